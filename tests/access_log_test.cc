// access_log_test.cc: the per-connection line, text and JSON, with hostile SNIs: every line is
// parsed back, and no input may add, remove or change a field other than its own.
#include "access_log.h"
#include "catch.h"

#include <string>
#include <utility>
#include <vector>

using namespace sniproxy;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

// What a key=value parser (fail2ban, a log shipper) does: split at spaces, then at the first
// '='. Values come back with their \xNN escapes undone.
Fields parse_text(const std::string& line)
{
    Fields out;
    std::size_t start = 0;
    while (start <= line.size()) {
        std::size_t end = line.find(' ', start);
        if (end == std::string::npos)
            end = line.size();
        const std::string token = line.substr(start, end - start);
        const std::size_t eq = token.find('=');
        REQUIRE(eq != std::string::npos);
        std::string value;
        for (std::size_t i = eq + 1; i < token.size(); i++) {
            if (token[i] == '\\') {
                REQUIRE(i + 3 < token.size() + 1);
                REQUIRE(token[i + 1] == 'x');
                value += static_cast<char>(std::stoi(token.substr(i + 2, 2), nullptr, 16));
                i += 3;
            } else {
                value += token[i];
            }
        }
        out.emplace_back(token.substr(0, eq), value);
        start = end + 1;
    }
    return out;
}

// A JSON object of strings and non-negative integers on one line, as format_access_json
// writes it; anything else fails the test. String values come back as bytes (each \u00XX
// one byte, as escape.h documents).
struct JsonReader {
    const std::string& s;
    std::size_t i = 0;

    char next()
    {
        REQUIRE(i < s.size());
        return s[i++];
    }
    std::string string()
    {
        REQUIRE(next() == '"');
        std::string out;
        for (;;) {
            const char c = next();
            REQUIRE(static_cast<unsigned char>(c) >= 0x20);
            REQUIRE(static_cast<unsigned char>(c) < 0x7f);
            if (c == '"')
                return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            const char e = next();
            const std::string shorts = "\"\\/bfnrt", meaning = "\"\\/\b\f\n\r\t";
            if (const std::size_t k = shorts.find(e); k != std::string::npos) {
                out += meaning[k];
                continue;
            }
            REQUIRE(e == 'u');
            REQUIRE(s.substr(i, 2) == "00");
            out += static_cast<char>(std::stoi(s.substr(i + 2, 2), nullptr, 16));
            i += 4;
        }
    }
    Fields object()
    {
        Fields out;
        REQUIRE(next() == '{');
        for (;;) {
            std::string key = string();
            REQUIRE(next() == ':');
            if (s[i] == '"') {
                out.emplace_back(std::move(key), string());
            } else {
                std::string digits;
                while (i < s.size() && s[i] >= '0' && s[i] <= '9')
                    digits += s[i++];
                REQUIRE(!digits.empty());
                out.emplace_back(std::move(key), digits);
            }
            const char c = next();
            if (c == '}')
                break;
            REQUIRE(c == ',');
        }
        REQUIRE(i == s.size());
        return out;
    }
};

Fields parse_json(const std::string& line)
{
    JsonReader r { line };
    return r.object();
}

AccessRecord refused(std::string sni)
{
    AccessRecord r;
    r.client = "192.0.2.1:5000";
    r.sni = std::move(sni);
    r.result = "bad-sni";
    r.reason = "bad-char";
    r.alert = 112;
    r.ms = 3;
    return r;
}

const Fields expected_refused(const std::string& sni)
{
    return { { "client", "192.0.2.1:5000" }, { "sni", sni }, { "route", "-" },
        { "result", "bad-sni" }, { "reason", "bad-char" }, { "alert", "112" }, { "up", "0" },
        { "down", "0" }, { "ms", "3" } };
}

const std::vector<std::string> hostile = {
    "a client=198.51.100.7:4242 result=ok",
    "x result=ok route=_default up=999",
    "\"quoted\" \"x\":\"y\"}",
    "evil\nsniproxyd[1]: client=6.6.6.6:1 sni=x route=y result=ok up=0 down=0 ms=0",
    std::string("nul\0byte=1", 10),
    "\xff\xfe\xc3\xbc\x80 \xe2\x80\xa8",
    "back\\x20slash\\",
    "\r\t\x1b[2J",
    "",
};

} // namespace

TEST_CASE("text: today's order and names", "[access_log]")
{
    AccessRecord r;
    r.client = "[2001:db8::1]:443";
    r.sni = "example.com";
    r.route = "*.example.com";
    r.result = "ok";
    r.up = 517;
    r.down = 1200;
    r.ms = 12;
    CHECK(format_access_text(r)
        == "client=[2001:db8::1]:443 sni=example.com route=*.example.com result=ok up=517 "
           "down=1200 ms=12");
    r.result = "backend-refused";
    r.error = "Connection refused";
    r.alert = 80;
    CHECK(format_access_text(r)
        == "client=[2001:db8::1]:443 sni=example.com route=*.example.com result=backend-refused "
           "errno=Connection\\x20refused alert=80 up=517 down=1200 ms=12");
}

TEST_CASE("text: the added fields come last, only when set", "[access_log]")
{
    AccessRecord r = refused("example.com");
    r.via = "10.0.0.1:3000";
    r.alpn = "h2";
    r.ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1";
    r.moved = 1;
    CHECK(format_access_text(r)
        == "client=192.0.2.1:5000 sni=example.com route=- result=bad-sni reason=bad-char "
           "alert=112 up=0 down=0 ms=3 via=10.0.0.1:3000 alpn=h2 "
           "ja4=t13d1516h2_8daaf6152771_e5627efa2ab1 moved=1");
}

TEST_CASE("no SNI can forge a field, in text or JSON", "[access_log]")
{
    for (const std::string& sni : hostile) {
        CAPTURE(sni);
        const Fields expected = expected_refused(sni.empty() ? "-" : sni);
        for (const std::string& line :
            { format_access_text(refused(sni)), format_access_json(refused(sni)) }) {
            CAPTURE(line);
            CHECK(line.find('\n') == std::string::npos);
            CHECK((line.starts_with('{') ? parse_json(line) : parse_text(line)) == expected);
        }
    }
}

TEST_CASE("text: an endless SNI is cut, and still one field", "[access_log]")
{
    const std::string sni(70000, ' ');
    const std::string line = format_access_text(refused(sni));
    CHECK(line.size() < 2000);
    const Fields f = parse_text(line);
    REQUIRE(f.size() == expected_refused("").size());
    CHECK(f[1].second.substr(0, access_value_max) == std::string(access_value_max, ' '));
    CHECK(f[1].second.ends_with("..."));
}

TEST_CASE("JSON: the same fields, numbers as numbers", "[access_log]")
{
    AccessRecord r = refused("example.com");
    r.moved = 2;
    r.via = "10.0.0.1:3000";
    CHECK(format_access_json(r)
        == "{\"client\":\"192.0.2.1:5000\",\"sni\":\"example.com\",\"route\":\"-\","
           "\"result\":\"bad-sni\",\"reason\":\"bad-char\",\"alert\":112,\"up\":0,\"down\":0,"
           "\"ms\":3,\"via\":\"10.0.0.1:3000\",\"moved\":2}");
}

TEST_CASE("the logged line fits what the parent keeps of a record, whatever the SNI",
    "[access_log]")
{
    // 0xff escapes to 4 bytes in text and 6 in JSON: a 256-byte SNI alone would pass 900.
    for (const std::string& sni : { std::string(70000, '\xff'), std::string(300, '"'),
             std::string("example.com") }) {
        for (const bool json : { false, true }) {
            const std::string line = format_access_line(refused(sni), json);
            CAPTURE(json, line);
            CHECK(line.size() <= access_line_max);
            const Fields f = json ? parse_json(line) : parse_text(line);
            REQUIRE(f.size() == expected_refused("").size());
            CHECK(f[3] == std::pair<std::string, std::string>("result", "bad-sni"));
            CHECK(f[8] == std::pair<std::string, std::string>("ms", "3"));
            if (sni.size() < 100) // nothing to cut: as format_access_text/json write it
                CHECK(line
                    == (json ? format_access_json(refused(sni)) : format_access_text(refused(sni))));
            else
                CHECK(f[1].second.ends_with("..."));
        }
    }
}
