// cidr_test.cc: CIDR syntax, matching of real socket addresses, HOST/allow files.
#include "catch.h"
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

using namespace sniproxy;

namespace {
sockaddr_storage sock(const char* text)
{
    sockaddr_storage ss {};
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    return ss;
}

Cidr cidr(const char* text)
{
    Cidr c;
    std::string err;
    REQUIRE(parse_cidr(text, &c, &err));
    return c;
}

std::string error_of(const char* text)
{
    Cidr c;
    std::string err;
    CHECK(!parse_cidr(text, &c, &err));
    return err;
}
} // namespace

TEST_CASE("CIDR blocks and bare addresses")
{
    CHECK(format_cidr(cidr("10.0.0.0/8")) == "10.0.0.0/8");
    CHECK(format_cidr(cidr("2001:db8::/32")) == "2001:db8::/32");
    CHECK(format_cidr(cidr("192.0.2.7")) == "192.0.2.7/32");
    CHECK(format_cidr(cidr("::1")) == "::1/128");
    CHECK(format_cidr(cidr("0.0.0.0/0")) == "0.0.0.0/0");
    CHECK(format_cidr(cidr("::ffff:10.0.0.0/104")) == "10.0.0.0/8");
}

TEST_CASE("bad CIDRs are refused with the reason")
{
    CHECK(error_of("10.0.0.0/33")
        == "'10.0.0.0/33': the prefix length must be a number from 0 to 32");
    CHECK(error_of("2001:db8::/129").find("from 0 to 128") != std::string::npos);
    CHECK(error_of("10.0.0.0/").find("prefix length") != std::string::npos);
    CHECK(error_of("10.0.0.0/8x").find("prefix length") != std::string::npos);
    CHECK(error_of("10.0.0.0/-1").find("prefix length") != std::string::npos);
    CHECK(error_of("example.com/8") == "not an IPv4 or IPv6 address: 'example.com/8'");
    CHECK(error_of("10.0.0/8").find("not an IPv4") == 0);
    CHECK(error_of("fe80::1%eth0").find("not an IPv4") == 0);
    CHECK(error_of("").find("not an IPv4") == 0);
    CHECK(error_of("10.1.2.3/8")
        == "'10.1.2.3/8': bits are set after the prefix (did you mean 10.0.0.0/8?)");
    CHECK(error_of("2001:db8::1/64").find("did you mean 2001:db8::/64?") != std::string::npos);
}

TEST_CASE("matching socket addresses, IPv4-mapped ones as IPv4")
{
    CidrList list;
    list.add(cidr("10.0.0.0/8"));
    list.add(cidr("2001:db8:1::/48"));
    list.add(cidr("192.0.2.128/25"));
    CHECK(list.contains(sock("10.200.3.4")));
    CHECK(list.contains(sock("::ffff:10.1.1.1")));
    CHECK(!list.contains(sock("11.0.0.1")));
    CHECK(!list.contains(sock("::ffff:11.0.0.1")));
    CHECK(list.contains(sock("2001:db8:1:ffff::1")));
    CHECK(!list.contains(sock("2001:db8:2::1")));
    CHECK(list.contains(sock("192.0.2.200")));
    CHECK(!list.contains(sock("192.0.2.127")));
    // An IPv6 rule never covers IPv4 clients, and a peer that is not IP is in no list.
    CidrList all6;
    all6.add(cidr("::/0"));
    CHECK(!all6.contains(sock("127.0.0.1")));
    CHECK(all6.contains(sock("::1")));
    sockaddr_storage unix_peer {};
    unix_peer.ss_family = AF_UNIX;
    CHECK(!all6.contains(unix_peer));
    CHECK(format_ip(ip_of(unix_peer)) == "-");
    CHECK(format_ip(ip_of(sock("::ffff:192.0.2.1"))) == "192.0.2.1");
}

TEST_CASE("masking an address to a prefix")
{
    CHECK(format_ip(mask_ip(ip_of(sock("192.0.2.77")), 24)) == "192.0.2.0");
    CHECK(format_ip(mask_ip(ip_of(sock("192.0.2.77")), 27)) == "192.0.2.64");
    CHECK(format_ip(mask_ip(ip_of(sock("2001:db8:1:2:3:4:5:6")), 64)) == "2001:db8:1:2::");
    CHECK(format_ip(mask_ip(ip_of(sock("2001:db8::1")), 128)) == "2001:db8::1");
    CHECK(format_ip(mask_ip(ip_of(sock("10.9.8.7")), 0)) == "0.0.0.0");
}

TEST_CASE("HOST/allow files")
{
    CidrList list;
    std::string err;
    REQUIRE(parse_allow_file(
        "# office\n  10.0.0.0/8   # VPN\n\n2001:db8::/32\n\t\n# end", &list, &err));
    REQUIRE(list.items().size() == 2);
    CHECK(list.contains(sock("10.1.2.3")));
    CHECK(list.contains(sock("2001:db8::5")));
    CHECK(!list.contains(sock("192.0.2.1")));

    CidrList untouched;
    untouched.add(cidr("192.0.2.0/24"));
    CHECK(!parse_allow_file("10.0.0.0/8\n\n10.0.0.0/33\n", &untouched, &err));
    CHECK(err == "line 3: '10.0.0.0/33': the prefix length must be a number from 0 to 32");
    CHECK(untouched.items().size() == 1);
    CHECK(!parse_allow_file("10.0.0.0/8 192.0.2.0/24\n", &untouched, &err));
    CHECK(err.rfind("line 1: ", 0) == 0);

    REQUIRE(parse_allow_file("# nobody\n", &list, &err));
    CHECK(list.empty());
}
