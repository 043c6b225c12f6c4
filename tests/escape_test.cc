// escape_test.cc: the one escaper: log values, text for people, and JSON strings.
#include "catch.h"
#include "escape.h"

#include <string>

using namespace sniproxy;

namespace {

std::string json(std::string_view in, std::size_t max = 256)
{
    std::string out;
    append_json_string(&out, in, max);
    return out;
}

} // namespace

TEST_CASE("a log value holds no space, =, quote, backslash or control byte", "[escape]")
{
    CHECK(escape_log_value("example.com") == "example.com");
    CHECK(escape_log_value("a client=1.2.3.4:5 result=ok")
        == "a\\x20client\\x3d1.2.3.4:5\\x20result\\x3dok");
    CHECK(escape_log_value("say \"hi\"") == "say\\x20\\x22hi\\x22");
    CHECK(escape_log_value("back\\slash") == "back\\x5cslash");
    CHECK(escape_log_value(std::string("a\0b\n\r\t\x7f", 7)) == "a\\x00b\\x0a\\x0d\\x09\\x7f");
    CHECK(escape_log_value("b\xc3\xbc\xff") == "b\\xc3\\xbc\\xff");
    CHECK(escape_log_value("") == "");
    // Every byte: what comes out is printable ASCII without the separators.
    std::string all;
    for (int c = 0; c < 256; c++)
        all += static_cast<char>(c);
    const std::string out = escape_log_value(all, all.size());
    for (const char c : out) {
        CHECK(c > 0x20);
        CHECK(c < 0x7f);
        CHECK(c != '=');
        CHECK(c != '"');
    }
    CHECK(out.find('\\') != std::string::npos); // only as the start of \xNN
}

TEST_CASE("values are cut after max input bytes", "[escape]")
{
    CHECK(escape_log_value(std::string(300, 'x'), 10) == std::string(10, 'x') + "...");
    CHECK(escape_log_value(std::string(10, 'x'), 10) == std::string(10, 'x'));
    // An escape is never cut in half.
    CHECK(escape_log_value(std::string(5, '\n'), 2) == "\\x0a\\x0a...");
    CHECK(escape_log_value(std::string(1000, 'x')).size() == 256 + 3);
}

TEST_CASE("text keeps spaces, escapes backslashes; escaped text keeps both", "[escape]")
{
    CHECK(escape("no tls-socket = here", EscapeSet::text) == "no tls-socket = here");
    CHECK(escape("a\\x0a\nb", EscapeSet::text) == "a\\x5cx0a\\x0ab");
    CHECK(escape("sni=a\\x00b\n", EscapeSet::escaped_text) == "sni=a\\x00b\\x0a");
}

TEST_CASE("terminal text keeps well-formed, printable UTF-8 only", "[escape]")
{
    const auto t = [](std::string_view in) { return escape(in, EscapeSet::terminal); };
    const std::string typed = "B\xc3\xbc"
                              "cher.example \xef\xbc\xbf \xf0\x9f\x98\x80";
    CHECK(t(typed) == typed);
    CHECK(t("evil\n.example\\") == "evil\\x0a.example\\x5c");
    CHECK(t("\xc2\x9b"
            "2J")
        == "\\xc2\\x9b2J"); // C1 CSI
    CHECK(t("\xe2\x80\xae"
            "abc")
        == "\\xe2\\x80\\xaeabc"); // right-to-left override
    CHECK(t("\xe2\x80\xa8") == "\\xe2\\x80\\xa8"); // line separator
    CHECK(t("\xc0\xaf") == "\\xc0\\xaf"); // overlong "/"
    CHECK(t("\xed\xa0\x80") == "\\xed\\xa0\\x80"); // a surrogate
    CHECK(t("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80"); // beyond U+10FFFF
    CHECK(t("\xc3") == "\\xc3"); // cut short
    CHECK(t("\xff\xc3\xbc") == "\\xff\xc3\xbc");
}

TEST_CASE("JSON strings are valid, ASCII and give the bytes back", "[escape]")
{
    CHECK(json("example.com") == "\"example.com\"");
    CHECK(json("a \"b\" \\c") == "\"a \\\"b\\\" \\\\c\"");
    CHECK(json("\b\f\n\r\t") == "\"\\b\\f\\n\\r\\t\"");
    CHECK(json(std::string("\0\x1f\x7f", 3)) == "\"\\u0000\\u001f\\u007f\"");
    CHECK(json("b\xc3\xbc\xff") == "\"b\\u00c3\\u00bc\\u00ff\"");
    CHECK(json(std::string(20, 'x'), 4) == "\"xxxx...\"");
    CHECK(json("") == "\"\"");
}
