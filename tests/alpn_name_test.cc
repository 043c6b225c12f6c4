// alpn_name_test.cc: the ALPN directory names (DESIGN.md's example among them), their exact
// inverse for the checker, and which alpn/ socket a client's offer chooses.
#include "alpn_name.h"
#include "catch.h"

#include <set>

using namespace sniproxy;

TEST_CASE("ALPN protocols encode as DESIGN.md says")
{
    CHECK(encode_alpn_name("acme-tls/1") == "acme-tls%2f1");
    CHECK(encode_alpn_name("h2") == "h2");
    CHECK(encode_alpn_name("http/1.1") == "http%2f1.1");
    CHECK(encode_alpn_name("HTTP") == "%48%54%54%50"); // uppercase is outside a-z
    CHECK(encode_alpn_name(std::string("\x00\xff%_ ", 5)) == "%00%ff%25%5f%20");
}

TEST_CASE("every byte value round-trips through the directory name")
{
    for (int b = 0; b < 256; b++) {
        const std::string proto { 'x', static_cast<char>(b), 'y' };
        const std::string name = encode_alpn_name(proto);
        std::string back;
        std::string err;
        INFO(b);
        REQUIRE(decode_alpn_name(name, &back, &err));
        REQUIRE(back == proto);
    }
}

TEST_CASE("names the encoding never produces are refused with a reason")
{
    std::string proto;
    std::string err;
    for (const char* bad :
        { "acme-tls/1", "acme-tls%2F1", "h%32", "%2", "%", "%zz", "", ".", "..", "H2", "a_b" }) {
        INFO(bad);
        err.clear();
        CHECK(!decode_alpn_name(bad, &proto, &err));
        CHECK(!err.empty());
    }
    CHECK(!decode_alpn_name(std::string(256, 'a'), &proto, &err));
    CHECK(decode_alpn_name(std::string(255, 'a'), &proto, &err));
    CHECK(decode_alpn_name("acme-tls%2f1", &proto, &err));
    CHECK(proto == "acme-tls/1");
}

TEST_CASE("the client's first offered protocol with an entry wins")
{
    std::set<std::string> present { "example.com/alpn/acme-tls%2f1/tls-socket",
        "example.com/alpn/http%2f1.1/tls-socket" };
    std::vector<std::string> asked;
    auto exists = [&](const std::string& p) {
        asked.push_back(p);
        return present.count(p) > 0;
    };

    auto acme = choose_alpn_socket("example.com", { "acme-tls/1" }, exists);
    REQUIRE(acme);
    CHECK(acme->protocol == "acme-tls/1");
    CHECK(acme->socket == "example.com/alpn/acme-tls%2f1/tls-socket");

    // A browser: h2 has no entry, http/1.1 has one; the client's order decides, not ours.
    asked.clear();
    auto browser = choose_alpn_socket("example.com", { "h2", "http/1.1" }, exists);
    REQUIRE(browser);
    CHECK(browser->protocol == "http/1.1");
    CHECK(asked
        == std::vector<std::string> {
            "example.com/alpn/h2/tls-socket", "example.com/alpn/http%2f1.1/tls-socket" });
    present.insert("example.com/alpn/h2/tls-socket");
    CHECK(choose_alpn_socket("example.com", { "h2", "http/1.1" }, exists)->protocol == "h2");
    CHECK(choose_alpn_socket("example.com", { "http/1.1", "h2" }, exists)->protocol == "http/1.1");

    CHECK(!choose_alpn_socket("example.com", { "spdy/3" }, exists));
    CHECK(!choose_alpn_socket("example.com", {}, exists));
    CHECK(!choose_alpn_socket("other.example", { "h2" }, exists));
}

TEST_CASE("protocols that cannot be a directory or a socket path are never asked about")
{
    std::vector<std::string> asked;
    auto exists = [&](const std::string& p) {
        asked.push_back(p);
        return true;
    };
    CHECK(!choose_alpn_socket("example.com", { ".", "..", std::string(100, 'a') }, exists));
    CHECK(asked.empty());
    auto r = choose_alpn_socket("example.com", { "..", "h2" }, exists);
    REQUIRE(r);
    CHECK(r->protocol == "h2");
}
