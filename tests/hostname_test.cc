// hostname_test.cc: SNI canonicalisation, route candidates and hosts-directory name kinds.
#include "catch.h"
#include "hostname.h"

#include <algorithm>
#include <string>
#include <vector>

using namespace sniproxy;
using namespace std::string_literals;

namespace {

NameError canon(std::string_view raw) // the error only
{
    std::string out;
    return canonicalize_hostname(raw, &out);
}

std::string canon_ok(std::string_view raw) // the name, "" on any error
{
    std::string out;
    canonicalize_hostname(raw, &out);
    return out;
}

// n labels of `len` bytes joined by dots.
std::string labels(std::size_t n, std::size_t len)
{
    std::string s;
    for (std::size_t i = 0; i < n; ++i)
        s += (i ? "." : "") + std::string(len, 'a');
    return s;
}

} // namespace

TEST_CASE("canonical names pass and are lowercased", "[hostname]")
{
    CHECK(canon_ok("example.com") == "example.com");
    CHECK(canon_ok("Example.COM") == "example.com");
    CHECK(canon_ok("WWW.EXAMPLE.COM") == "www.example.com");
    CHECK(canon_ok("localhost") == "localhost");
    CHECK(canon_ok("a") == "a");
    CHECK(canon_ok("a-b.c-d") == "a-b.c-d");
    CHECK(canon_ok("xn--bcher-kva.example") == "xn--bcher-kva.example");
    CHECK(canon_ok("1.2.3.com") == "1.2.3.com");
    CHECK(canon_ok("123abc") == "123abc");
    CHECK(canon_ok("0xg") == "0xg");
    CHECK(canon_ok("a.0x1g") == "a.0x1g");
}

TEST_CASE("one trailing dot is dropped, not two", "[hostname]")
{
    CHECK(canon_ok("example.com.") == "example.com");
    CHECK(canon_ok("Example.Com.") == "example.com");
    CHECK(canon("example.com..") == NameError::empty_label);
    CHECK(canon(".") == NameError::empty);
    CHECK(canon("..") == NameError::empty_label);
}

TEST_CASE("each error has a minimal example", "[hostname]")
{
    CHECK(canon("") == NameError::empty);
    CHECK(canon(std::string(254, 'a')) == NameError::too_long);
    CHECK(canon("a..b") == NameError::empty_label);
    CHECK(canon(".a") == NameError::empty_label);
    CHECK(canon(std::string(64, 'a')) == NameError::label_too_long);
    CHECK(canon("a_b") == NameError::bad_char);
    CHECK(canon("-a") == NameError::bad_hyphen);
    CHECK(canon("a-") == NameError::bad_hyphen);
    CHECK(canon("a.-b.c") == NameError::bad_hyphen);
    CHECK(canon("1.2.3.4") == NameError::ip_literal);
}

TEST_CASE("an error leaves the output empty", "[hostname]")
{
    std::string out = "stale";
    CHECK(canonicalize_hostname("a..b", &out) == NameError::empty_label);
    CHECK(out.empty());
    out = "stale";
    CHECK(canonicalize_hostname("Ok.Example", &out) == NameError::ok);
    CHECK(out == "ok.example");
}

TEST_CASE("label length limit is 63", "[hostname]")
{
    std::string l63(63, 'a'), l64(64, 'a');
    CHECK(canon_ok(l63 + ".com") == l63 + ".com");
    CHECK(canon_ok("www." + l63) == "www." + l63);
    CHECK(canon(l64 + ".com") == NameError::label_too_long);
    CHECK(canon("www." + l64) == NameError::label_too_long);
    CHECK(canon("www." + l64 + ".") == NameError::label_too_long);
}

TEST_CASE("name length limit is 253", "[hostname]")
{
    // 4 labels of 62 + 3 dots = 251; add ".b" to reach 253, ".bc" for 254.
    std::string n253 = labels(4, 62) + ".b";
    std::string n254 = labels(4, 62) + ".bc";
    REQUIRE(n253.size() == 253);
    REQUIRE(n254.size() == 254);
    CHECK(canon_ok(n253) == n253);
    CHECK(canon_ok(n253 + ".") == n253); // the dropped dot does not count
    CHECK(canon(n254) == NameError::too_long);
    CHECK(canon(n254 + ".") == NameError::too_long);
    CHECK(canon(std::string(70000, 'a')) == NameError::too_long);
}

TEST_CASE("NUL, non-ASCII and other bytes are bad characters", "[hostname]")
{
    CHECK(canon("exa\0mple.com"s) == NameError::bad_char);
    CHECK(canon("example.com\0"s) == NameError::bad_char);
    CHECK(canon("\0"s) == NameError::bad_char);
    CHECK(canon("b\xc3\xbc"
                "cher.example")
        == NameError::bad_char);
    CHECK(canon("\xff") == NameError::bad_char);
    CHECK(canon("\x80.com") == NameError::bad_char);
    for (const char* s : { "a b", "a/b", "..", "a\\b", "a@b", "a:b", "a%b", "a\tb", "a\nb" })
        CHECK(canon(s) != NameError::ok);
    CHECK(canon("../etc") == NameError::empty_label);
    CHECK(canon("a/../b") == NameError::bad_char);
}

TEST_CASE("route names are not valid SNIs", "[hostname]")
{
    CHECK(canon("_default") == NameError::bad_char);
    CHECK(canon("*") == NameError::bad_char);
    CHECK(canon("*.example.com") == NameError::bad_char);
    CHECK(canon("ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0") == NameError::ok); // lowercased
}

TEST_CASE("IPv4 literals in every form are rejected", "[hostname]")
{
    for (const char* s : { "1.2.3.4", "1.2.3.4.", "127.1", "0x7f.1", "1.0x7f", "0x7f000001",
             "0X7F.0.0.1", "2130706433", "017700000001", "1", "1.2.3.4.5", "example.123", "a.0x",
             "256.256.256.256", "0x.0x" }) {
        INFO(s);
        CHECK(canon(s) == NameError::ip_literal);
    }
}

TEST_CASE("IPv6 literals are rejected", "[hostname]")
{
    CHECK(canon("::1") == NameError::ip_literal);
    CHECK(canon("[::1]") == NameError::ip_literal);
    CHECK(canon("2001:DB8::1") == NameError::ip_literal);
    CHECK(canon("[2001:db8::1].") == NameError::ip_literal);
    CHECK(canon("::ffff:1.2.3.4") == NameError::ip_literal);
    CHECK(canon("[::1") == NameError::bad_char);
    CHECK(canon("fe80::1%eth0") == NameError::bad_char);
    CHECK(canon("example.com:443") == NameError::bad_char);
}

TEST_CASE("error strings are short and distinct", "[hostname]")
{
    CHECK(std::string(name_error_string(NameError::ok)) == "ok");
    CHECK(std::string(name_error_string(NameError::bad_char)) == "bad-char");
    CHECK(std::string(name_error_string(NameError::ip_literal)) == "ip-literal");
    std::vector<std::string> seen;
    for (NameError e : { NameError::ok, NameError::empty, NameError::too_long,
             NameError::empty_label, NameError::label_too_long, NameError::bad_char,
             NameError::bad_hyphen, NameError::ip_literal }) {
        std::string s = name_error_string(e);
        CHECK(s.find_first_not_of("abcdefghijklmnopqrstuvwxyz-") == std::string::npos);
        CHECK(std::find(seen.begin(), seen.end(), s) == seen.end());
        seen.push_back(s);
    }
}

TEST_CASE("route candidates", "[hostname]")
{
    std::string multi = "www.example.com";
    CHECK(route_candidates(&multi)
        == std::vector<std::string> { "www.example.com", "*.example.com", "_default" });
    std::string two = "example.com";
    CHECK(
        route_candidates(&two) == std::vector<std::string> { "example.com", "*.com", "_default" });
    std::string single = "localhost";
    CHECK(route_candidates(&single) == std::vector<std::string> { "localhost", "_default" });
    CHECK(route_candidates(nullptr) == std::vector<std::string> { "_nosni", "_default" });
}

TEST_CASE("hosts-directory names are classified", "[hostname]")
{
    CHECK(classify_dir_name("example.com") == DirKind::hostname);
    CHECK(classify_dir_name("localhost") == DirKind::hostname);
    CHECK(classify_dir_name("default") == DirKind::hostname);
    CHECK(classify_dir_name("tls-socket") == DirKind::hostname);
    CHECK(classify_dir_name("*.example.com") == DirKind::wildcard);
    CHECK(classify_dir_name("*.com") == DirKind::wildcard);
    CHECK(classify_dir_name("_default") == DirKind::default_route);
    CHECK(classify_dir_name("_nosni") == DirKind::default_route);
    CHECK(classify_dir_name("ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0") == DirKind::hashed);
    CHECK(classify_dir_name(std::string(43, 'A')) == DirKind::hashed);
    CHECK(classify_dir_name(std::string(42, '_') + "A") == DirKind::hashed);
    CHECK(classify_dir_name("-" + std::string(41, 'a') + "A") == DirKind::hashed); // bad hyphen
    CHECK(classify_dir_name(std::string(42, '1') + "0") == DirKind::hashed); // all digits

    // 43 lowercase characters make a valid hostname first.
    CHECK(classify_dir_name(std::string(43, 'a')) == DirKind::hostname);

    for (const char* s : { "", "Example.com", "EXAMPLE.COM", "example.com.", "*", "*.", "*.*.com",
             "**.com", "*example.com", "a.*.com", "*.Example.com", "*.1.2.3.4", "_Default",
             "_default.", "1.2.3.4", "a..b", ".", "..", "-a", "a_b", "a/b", "../x",
             "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe", // 42
             "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0A", // 44
             "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe+", // standard, not URL-safe
             "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe1" }) { // low bits set: never produced
        INFO(s);
        CHECK(classify_dir_name(s) == DirKind::invalid);
    }
    CHECK(classify_dir_name("example\0com"s) == DirKind::invalid);
}
