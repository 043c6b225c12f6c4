// idn_test.cc: operator input to A-labels (sniproxyctl hostname), and what must be refused.
#include "catch.h"
#include "idn.h"

#include <string>

using namespace sniproxy;

namespace {

std::string a_label(std::string_view input) // "" on error
{
    std::string out, error;
    to_a_label(input, &out, &error);
    return out;
}

std::string error_of(std::string_view input) // "" on success
{
    std::string out, error;
    if (to_a_label(input, &out, &error))
        return "";
    CHECK(out.empty());
    CHECK(!error.empty());
    return error;
}

std::string repeat(std::size_t n, std::string_view s)
{
    std::string out;
    for (std::size_t i = 0; i < n; ++i)
        out += s;
    return out;
}

} // namespace

TEST_CASE("internationalized names become lowercase A-labels", "[idn]")
{
    CHECK(a_label("Bücher.Example.") == "xn--bcher-kva.example");
    CHECK(a_label("bücher.example") == "xn--bcher-kva.example");
    // Computed with libidn2's idn2 and Python's IDNA2003 codec, which agree on this one.
    CHECK(a_label("例え.テスト") == "xn--r8jz45g.xn--zckzah");
    // Non-transitional (IDNA2008): ß is kept, not mapped to "ss" as IDNA2003 would.
    CHECK(a_label("Straße.de") == "xn--strae-oqa.de");
    // UTS #46 mapping: full-width letters and the ideographic full stop.
    CHECK(a_label("ＥＸＡＭＰＬＥ．com") == "example.com");
    CHECK(a_label("a。b") == "a.b");
    // An A-label passes through unchanged.
    CHECK(a_label("xn--bcher-kva.example") == "xn--bcher-kva.example");
}

TEST_CASE("ASCII names are lowercased and lose one trailing dot", "[idn]")
{
    CHECK(a_label("EXAMPLE.COM") == "example.com");
    CHECK(a_label("Www.Example.Com.") == "www.example.com");
    CHECK(a_label("localhost") == "localhost");
    CHECK(error_of("example.com..") == "empty-label");
}

TEST_CASE("wildcards keep their leading label", "[idn]")
{
    CHECK(a_label("*.bücher.example") == "*.xn--bcher-kva.example");
    CHECK(a_label("*.Example.COM.") == "*.example.com");
    CHECK(a_label("＊．example") == "*.example");
    CHECK(error_of("*") == "bad-char");
    CHECK(error_of("*.") == "empty");
    CHECK(error_of("a.*.example") == "bad-char");
    CHECK(error_of("**.example") == "bad-char");
}

TEST_CASE("invalid names are refused with a reason", "[idn]")
{
    // STD3: libidn2's own STD3 flag would silently drop these characters and answer
    // "ab.example", "acme.example": they must be refused instead.
    CHECK(error_of("a_b.example") == "bad-char");
    CHECK(error_of("_acme-challenge.example") == "bad-char");
    CHECK(error_of("＿acme.example") == "bad-char"); // full-width low line maps to '_'
    CHECK(error_of("a b.example") == "bad-char");
    CHECK(error_of("a/b.example") == "bad-char");
    CHECK(error_of("⑴.example") == "bad-char"); // maps to "(1)"

    CHECK(error_of("127.0.0.1") == "ip-literal");
    CHECK(error_of("0x7f.1") == "ip-literal");
    CHECK(error_of("[::1]") == "ip-literal");

    CHECK(error_of("") == "empty");
    CHECK(error_of(".") == "empty");
    CHECK(error_of("a..b") == "empty-label");
    CHECK(error_of(".example") == "empty-label");

    CHECK(error_of(repeat(64, "a") + ".com") == "domain label longer than 63 characters");
    // 253 bytes is the most DNS (and the daemon) allows; libidn2 enforces the same limit.
    const std::string longest
        = repeat(63, "a") + "." + repeat(63, "b") + "." + repeat(63, "c") + "." + repeat(61, "d");
    REQUIRE(longest.size() == 253);
    CHECK(a_label(longest) == longest);
    CHECK(a_label(longest + ".") == longest); // the trailing dot is not part of the length
    CHECK(error_of(longest + "d") == "domain name longer than 255 characters");

    CHECK(error_of("-a.example") == "string start/ends with forbidden hyphen");
    CHECK(error_of("xn--zz.example") == "string contains invalid punycode data");
}

TEST_CASE("input must be UTF-8 without NUL", "[idn]")
{
    CHECK(error_of("a\xff"
                   "b.example")
        == "string encoding error");
    CHECK(error_of("b\xc3.example") == "string encoding error"); // truncated sequence
    CHECK(error_of(std::string_view("a\0b.example", 11)) == "contains a NUL byte");
}
