// listen_address_test.cc: the -l syntax and address printing.
#include "catch.h"
#include "listen_address.h"

#include <netinet/in.h>

using namespace sniproxy;

TEST_CASE("IPv4, IPv6 and the wildcard")
{
    std::vector<ListenAddress> out;
    REQUIRE(parse_listen_address("127.0.0.1:8443", out).empty());
    REQUIRE(out.size() == 1);
    CHECK(format_address(out[0].addr) == "127.0.0.1:8443");
    CHECK(out[0].len == sizeof(sockaddr_in));

    out.clear();
    REQUIRE(parse_listen_address("[::1]:443", out).empty());
    CHECK(format_address(out[0].addr) == "[::1]:443");
    CHECK(out[0].len == sizeof(sockaddr_in6));

    out.clear();
    REQUIRE(parse_listen_address("*:443", out).empty());
    REQUIRE(out.size() == 2);
    CHECK(format_address(out[0].addr) == "0.0.0.0:443");
    CHECK(format_address(out[1].addr) == "[::]:443");
}

TEST_CASE("bad listen addresses")
{
    std::vector<ListenAddress> out;
    CHECK(!parse_listen_address("8443", out).empty());
    CHECK(!parse_listen_address("127.0.0.1:0", out).empty());
    CHECK(!parse_listen_address("127.0.0.1:65536", out).empty());
    CHECK(!parse_listen_address("127.0.0.1:", out).empty());
    CHECK(!parse_listen_address("localhost:443", out).empty());
    CHECK(!parse_listen_address("::1:443", out).empty());
    CHECK(!parse_listen_address("[::1:443", out).empty());
    CHECK(!parse_listen_address("[127.0.0.1]:443", out).empty());
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
