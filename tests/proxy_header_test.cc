// proxy_header_test.cc: exact bytes of the PROXY v1 and v2 headers (proxy_header.cc).
#include "catch.h"

#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <string>
#include <vector>

using namespace sniproxy;

namespace {

sockaddr_storage v4(const char* addr, std::uint16_t port)
{
    sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    REQUIRE(inet_pton(AF_INET, addr, &sin.sin_addr) == 1);
    sockaddr_storage ss {};
    std::memcpy(&ss, &sin, sizeof sin);
    return ss;
}

sockaddr_storage v6(const char* addr, std::uint16_t port)
{
    sockaddr_in6 sin6 {};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    REQUIRE(inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1);
    sockaddr_storage ss {};
    std::memcpy(&ss, &sin6, sizeof sin6);
    return ss;
}

sockaddr_storage unix_socket()
{
    sockaddr_un sa {};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, "/run/sniproxyd.sock");
    sockaddr_storage ss {};
    std::memcpy(&ss, &sa, sizeof sa);
    return ss;
}

using Bytes = std::vector<std::uint8_t>;

const Bytes signature { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

// The signature followed by `rest`, so each expectation shows only what differs.
Bytes v2(const Bytes& rest)
{
    Bytes out = signature;
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
}

// The length field must count exactly the bytes after the 16-byte fixed part.
std::size_t length_field(const Bytes& h)
{
    return std::size_t(h.at(14)) << 8 | h.at(15);
}

} // namespace

TEST_CASE("v1 TCP4")
{
    CHECK(proxy_v1_header(v4("192.0.2.1", 56324), v4("198.51.100.7", 443))
        == "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n");
}

TEST_CASE("v1 TCP6 uses the compressed textual form")
{
    CHECK(proxy_v1_header(v6("2001:0db8:0000:0000:0000:0000:0000:0001", 40000), v6("::1", 8443))
        == "PROXY TCP6 2001:db8::1 ::1 40000 8443\r\n");
}

TEST_CASE("v1 IPv4-mapped IPv6 addresses become TCP4")
{
    CHECK(proxy_v1_header(v6("::ffff:192.0.2.1", 1234), v6("::ffff:10.0.0.1", 443))
        == "PROXY TCP4 192.0.2.1 10.0.0.1 1234 443\r\n");
    // One mapped side and one plain IPv4 side agree after normalisation.
    CHECK(proxy_v1_header(v6("::ffff:192.0.2.1", 1234), v4("10.0.0.1", 443))
        == "PROXY TCP4 192.0.2.1 10.0.0.1 1234 443\r\n");
}

TEST_CASE("v1 mixed families are UNKNOWN")
{
    CHECK(proxy_v1_header(v4("192.0.2.1", 1), v6("::1", 2)) == "PROXY UNKNOWN\r\n");
    CHECK(proxy_v1_header(v6("::ffff:192.0.2.1", 1), v6("2001:db8::1", 2)) == "PROXY UNKNOWN\r\n");
}

TEST_CASE("v1 AF_UNIX and AF_UNSPEC are UNKNOWN")
{
    CHECK(proxy_v1_header(unix_socket(), unix_socket()) == "PROXY UNKNOWN\r\n");
    CHECK(proxy_v1_header(unix_socket(), v4("10.0.0.1", 443)) == "PROXY UNKNOWN\r\n");
    CHECK(proxy_v1_header(sockaddr_storage {}, sockaddr_storage {}) == "PROXY UNKNOWN\r\n");
}

TEST_CASE("v1 ports at the extremes")
{
    CHECK(proxy_v1_header(v4("0.0.0.0", 0), v4("255.255.255.255", 65535))
        == "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
    std::string longest = proxy_v1_header(v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
        v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535));
    CHECK(longest
        == "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe "
           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
    CHECK(longest.size() <= 107); // the spec's maximum v1 line length
}

TEST_CASE("v2 IPv4 without TLVs")
{
    Bytes h = proxy_v2_header(v4("192.0.2.1", 56324), v4("198.51.100.7", 443), "", "");
    CHECK(h
        == v2({ 0x21, 0x11, 0x00, 0x0C, // PROXY, TCP over IPv4, 12 bytes follow
            192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB }));
}

TEST_CASE("v2 IPv4 with ALPN and authority TLVs")
{
    Bytes h = proxy_v2_header(v4("10.1.2.3", 1), v4("10.0.0.1", 65535), "example.com", "h2");
    CHECK(h
        == v2({ 0x21, 0x11, 0x00, 0x1F, // 12 + (3 + 2) + (3 + 11) = 31
            10, 1, 2, 3, 10, 0, 0, 1, 0x00, 0x01, 0xFF, 0xFF, //
            0x01, 0x00, 0x02, 'h', '2', //
            0x02, 0x00, 0x0B, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm' }));
    CHECK(length_field(h) == h.size() - 16);
}

TEST_CASE("v2 JA4 TLV comes last, with our custom type 0xE4")
{
    Bytes h = proxy_v2_header(v4("10.1.2.3", 1), v4("10.0.0.1", 2), "a.b", "", "t13i");
    CHECK(h
        == v2({ 0x21, 0x11, 0x00, 0x19, // 12 + (3 + 3) + (3 + 4) = 25
            10, 1, 2, 3, 10, 0, 0, 1, 0x00, 0x01, 0x00, 0x02, //
            0x02, 0x00, 0x03, 'a', '.', 'b', //
            0xE4, 0x00, 0x04, 't', '1', '3', 'i' }));
}

TEST_CASE("v2 empty TLV values are left out")
{
    Bytes only_authority = proxy_v2_header(v4("10.1.2.3", 0), v4("10.0.0.1", 0), "a.b", "");
    CHECK(only_authority
        == v2({ 0x21, 0x11, 0x00, 0x12, 10, 1, 2, 3, 10, 0, 0, 1, 0, 0, 0, 0, //
            0x02, 0x00, 0x03, 'a', '.', 'b' }));
    Bytes only_alpn = proxy_v2_header(v4("10.1.2.3", 0), v4("10.0.0.1", 0), "", "http/1.1");
    CHECK(only_alpn
        == v2({ 0x21, 0x11, 0x00, 0x17, 10, 1, 2, 3, 10, 0, 0, 1, 0, 0, 0, 0, //
            0x01, 0x00, 0x08, 'h', 't', 't', 'p', '/', '1', '.', '1' }));
}

TEST_CASE("v2 IPv6")
{
    Bytes h = proxy_v2_header(v6("2001:db8::1", 443), v6("::1", 8443), "", "");
    CHECK(h
        == v2({ 0x21, 0x21, 0x00, 0x24, // PROXY, TCP over IPv6, 36 bytes follow
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
            0x01, 0xBB, 0x20, 0xFB }));
}

TEST_CASE("v2 IPv4-mapped addresses become AF_INET")
{
    Bytes h = proxy_v2_header(v6("::ffff:192.0.2.1", 1234), v4("10.0.0.1", 443), "", "");
    CHECK(h
        == v2({ 0x21, 0x11, 0x00, 0x0C, //
            192, 0, 2, 1, 10, 0, 0, 1, 0x04, 0xD2, 0x01, 0xBB }));
}

TEST_CASE("v2 UNSPEC has no address block but keeps the TLVs")
{
    Bytes expected = v2({ 0x21, 0x00, 0x00, 0x0C, //
        0x01, 0x00, 0x02, 'h', '2', //
        0x02, 0x00, 0x04, 'x', '.', 'y', 'z' });
    CHECK(proxy_v2_header(v4("192.0.2.1", 1), v6("::1", 2), "x.yz", "h2") == expected);
    CHECK(proxy_v2_header(unix_socket(), unix_socket(), "x.yz", "h2") == expected);
    CHECK(proxy_v2_header(unix_socket(), unix_socket(), "", "") == v2({ 0x21, 0x00, 0x00, 0x00 }));
}

TEST_CASE("v2 long TLVs: 253-byte authority and 255-byte ALPN")
{
    std::string authority(253, 'a');
    std::string alpn(255, 'p');
    Bytes h = proxy_v2_header(v6("2001:db8::1", 1), v6("2001:db8::2", 2), authority, alpn);
    REQUIRE(h.size() == 16 + 36 + 3 + 255 + 3 + 253);
    CHECK(length_field(h) == h.size() - 16);
    CHECK(length_field(h) == 0x0226);
    CHECK(h[52] == 0x01);
    CHECK(h[53] == 0x00);
    CHECK(h[54] == 0xFF);
    CHECK(h[55 + 255] == 0x02);
    CHECK(h[56 + 255] == 0x00);
    CHECK(h[57 + 255] == 0xFD);
    CHECK(std::string(h.end() - 253, h.end()) == authority);
}

TEST_CASE("v2 a TLV that cannot fit the 16-bit length is left out")
{
    std::string huge(70000, 'a');
    Bytes h = proxy_v2_header(v4("10.1.2.3", 1), v4("10.0.0.1", 2), huge, "h2");
    CHECK(h.size() == 16 + 12 + 5);
    CHECK(length_field(h) == h.size() - 16);
    // The largest value that still fits: 0xFFFF - 12 (addresses) - 3 (TLV header).
    std::string largest(0xFFFF - 12 - 3, 'a');
    Bytes full = proxy_v2_header(v4("10.1.2.3", 1), v4("10.0.0.1", 2), largest, "");
    CHECK(full.size() == 16 + 0xFFFF);
    CHECK(length_field(full) == 0xFFFF);
}
