// listen_address_test.cc: the -l syntax and address printing.
#include "catch.h"
#include "listen_address.h"

#include <netinet/in.h>

using namespace sniproxy;

namespace {

bool ok(std::string_view text, std::vector<ListenAddress>& out)
{
    std::string err;
    const bool parsed = parse_listen_address(text, &out, &err);
    CHECK(parsed == err.empty());
    return parsed;
}

} // namespace

TEST_CASE("IPv4, IPv6 and the wildcard")
{
    std::vector<ListenAddress> out;
    REQUIRE(ok("127.0.0.1:8443", out));
    REQUIRE(out.size() == 1);
    CHECK(format_address(out[0].addr) == "127.0.0.1:8443");
    CHECK(out[0].len == sizeof(sockaddr_in));

    out.clear();
    REQUIRE(ok("[::1]:443", out));
    CHECK(format_address(out[0].addr) == "[::1]:443");
    CHECK(out[0].len == sizeof(sockaddr_in6));

    out.clear();
    REQUIRE(ok("*:443", out));
    REQUIRE(out.size() == 2);
    CHECK(format_address(out[0].addr) == "0.0.0.0:443");
    CHECK(format_address(out[1].addr) == "[::]:443");
}

TEST_CASE("bad listen addresses")
{
    std::vector<ListenAddress> out;
    CHECK(!ok("8443", out));
    CHECK(!ok("127.0.0.1:0", out));
    CHECK(!ok("127.0.0.1:65536", out));
    CHECK(!ok("127.0.0.1:", out));
    CHECK(!ok("localhost:443", out));
    CHECK(!ok("::1:443", out));
    CHECK(!ok("[::1:443", out));
    CHECK(!ok("[127.0.0.1]:443", out));
    CHECK(out.empty());
}

TEST_CASE("format_address of other families")
{
    sockaddr_storage unix_addr {};
    unix_addr.ss_family = AF_UNIX;
    CHECK(format_address(unix_addr) == "unix");
    sockaddr_storage none {};
    CHECK(format_address(none) == "?");
}
