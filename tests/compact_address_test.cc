// compact_address_test.cc: what a connection keeps of its addresses and JA4 comes back
// exactly as it went in (the log line and the PROXY header are built from it).
#include "catch.h"
#include "compact_address.h"
#include "listen_address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <string>

using namespace sniproxy;

namespace {

sockaddr_storage v4(const char* ip, std::uint16_t port)
{
    sockaddr_storage ss {};
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    return ss;
}

sockaddr_storage v6(const char* ip, std::uint16_t port, std::uint32_t scope)
{
    sockaddr_storage ss {};
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_flowinfo = htonl(7);
    sin6->sin6_scope_id = scope;
    inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    return ss;
}

bool same_bytes(const sockaddr_storage& a, const sockaddr_storage& b)
{
    return std::memcmp(&a, &b, sizeof a) == 0;
}

} // namespace

TEST_CASE("an IPv4 or IPv6 address comes back byte for byte")
{
    for (const sockaddr_storage& in :
        { v4("198.51.100.7", 4242), v6("2001:db8::1", 443, 0), v6("fe80::1", 65535, 3) }) {
        const CompactAddress c(in);
        const sockaddr_storage out = c;
        CHECK(same_bytes(in, out));
        CHECK(format_address(c) == format_address(in));
    }
    CHECK(format_address(CompactAddress(v6("2001:db8::ff", 8443, 0))) == "[2001:db8::ff]:8443");
}

TEST_CASE("assigning replaces the whole address, family included")
{
    CompactAddress c(v6("2001:db8::1", 443, 9));
    c = v4("192.0.2.1", 5000);
    CHECK(c.ss_family == AF_INET);
    CHECK(same_bytes(c, v4("192.0.2.1", 5000)));
    CHECK(format_address(c) == "192.0.2.1:5000");
}

TEST_CASE("an unset or non-IP address keeps only its family")
{
    const CompactAddress unset;
    CHECK(unset.ss_family == AF_UNSPEC);
    CHECK(same_bytes(unset, sockaddr_storage {}));
    sockaddr_storage un {};
    auto* sun = reinterpret_cast<sockaddr_un*>(&un);
    sun->sun_family = AF_UNIX;
    std::strcpy(sun->sun_path, "/run/a-path-longer-than-twenty-eight-bytes");
    const CompactAddress c(un);
    CHECK(c.ss_family == AF_UNIX);
    CHECK(format_address(c) == "unix");
    sockaddr_storage family_only {};
    family_only.ss_family = AF_UNIX;
    CHECK(same_bytes(c, family_only));
}

TEST_CASE("a JA4 is kept whole, and nothing longer than its 36 characters is kept")
{
    Ja4Text t;
    CHECK(std::string_view(t).empty());
    const std::string ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1";
    REQUIRE(ja4.size() == ja4_length);
    t = ja4;
    CHECK(std::string_view(t) == ja4);
    CHECK(t.size() == 36);
    t = std::string(40, 'x');
    CHECK(std::string_view(t) == std::string(36, 'x'));
    t = "";
    CHECK(t.size() == 0);
}
