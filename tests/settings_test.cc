// settings_test.cc: the settings table of sniproxyd(8): values, errors, -f/-o precedence.
#include "catch.h"
#include "settings.h"

#include <netinet/in.h>

using namespace sniproxy;

namespace {
Settings parse_ok(std::string_view file, std::vector<std::string> o = {})
{
    Settings s;
    std::string err;
    INFO(err);
    REQUIRE(parse_settings("/etc/sniproxyd.conf", file, o, &s, &err));
    return s;
}

std::string error_of(std::string_view file, std::vector<std::string> o = {})
{
    Settings s;
    s.source_max = 77;
    std::string err;
    CHECK(!parse_settings("/etc/sniproxyd.conf", file, o, &s, &err));
    CHECK(s.source_max == 77); // untouched on error
    return err;
}

std::vector<std::string> cidrs(const CidrList& list)
{
    std::vector<std::string> out;
    for (const Cidr& c : list.items())
        out.push_back(format_cidr(c));
    return out;
}
} // namespace

TEST_CASE("the defaults refuse nothing")
{
    const Settings s = parse_ok("");
    CHECK(s.allow.empty());
    CHECK(s.deny.empty());
    CHECK(s.source_max == 0);
    CHECK(s.source_rate == SourceRate {});
    CHECK(s.source_hellos == 0);
    CHECK(s.source_prefix4 == 32);
    CHECK(s.source_prefix6 == 64);
    CHECK(s.idle_timeout == 0);
    CHECK(s.proxy_from.empty());
    CHECK(!s.metrics);
    CHECK(s.log_format == LogFormat::text);
}

TEST_CASE("every setting from a file, with comments, blank lines and spaces")
{
    const Settings s = parse_ok("# limits\n"
                                "allow = 10.0.0.0/8\n"
                                "allow=2001:db8::/32   # office\n"
                                "\n"
                                "deny=10.66.0.0/16\n"
                                "\tsource-max=100\n"
                                "source-rate=20/50\n"
                                "source-hellos=30\n"
                                "source-prefix4=24\n"
                                "source-prefix6=56\n"
                                "idle-timeout=300\n"
                                "proxy-from=192.0.2.10\n"
                                "metrics=127.0.0.1:9100\n"
                                "log-format=json\n");
    CHECK(cidrs(s.allow) == std::vector<std::string> { "10.0.0.0/8", "2001:db8::/32" });
    CHECK(cidrs(s.deny) == std::vector<std::string> { "10.66.0.0/16" });
    CHECK(s.source_max == 100);
    CHECK(s.source_rate == SourceRate { 20, 50 });
    CHECK(s.source_hellos == 30);
    CHECK(s.source_prefix4 == 24);
    CHECK(s.source_prefix6 == 56);
    CHECK(s.idle_timeout == 300);
    CHECK(cidrs(s.proxy_from) == std::vector<std::string> { "192.0.2.10/32" });
    REQUIRE(s.metrics);
    REQUIRE(s.metrics->inet.size() == 1);
    CHECK(format_address(s.metrics->inet[0].addr) == "127.0.0.1:9100");
    CHECK(s.log_format == LogFormat::json);
}

TEST_CASE("source-rate's burst defaults to the rate")
{
    CHECK(parse_ok("source-rate=5").source_rate == SourceRate { 5, 5 });
    CHECK(parse_ok("source-rate=0").source_rate == SourceRate { 0, 0 });
    CHECK(parse_ok("", { "source-rate=1/1" }).source_rate == SourceRate { 1, 1 });
}

TEST_CASE("metrics on a Unix socket or a wildcard")
{
    const Settings u = parse_ok("metrics=unix:/run/sniproxyd/metrics.sock");
    REQUIRE(u.metrics);
    CHECK(u.metrics->unix_path == "/run/sniproxyd/metrics.sock");
    CHECK(u.metrics->inet.empty());
    const Settings w = parse_ok("metrics=*:9100");
    REQUIRE(w.metrics);
    CHECK(w.metrics->inet.size() == 2);
}

TEST_CASE("bad values name the setting and the file's line")
{
    CHECK(error_of("\n# c\nsource-max=-1\n")
        == "settings file /etc/sniproxyd.conf line 3: source-max: not a number: -1");
    CHECK(error_of("allow=10.0.0.0/33")
        == "settings file /etc/sniproxyd.conf line 1: allow: '10.0.0.0/33': the prefix length "
           "must be a number from 0 to 32");
    CHECK(error_of("frobnicate=1")
        == "settings file /etc/sniproxyd.conf line 1: frobnicate: unknown setting (see SETTINGS "
           "in sniproxyd(8))");
    CHECK(error_of("source-max 5")
        == "settings file /etc/sniproxyd.conf line 1: expected name=value: source-max 5");
    CHECK(error_of("source-max=")
        == "settings file /etc/sniproxyd.conf line 1: source-max: needs a value");
    CHECK(error_of("source-max=1000001").find("source-max: must be from 0 to 1000000: 1000001")
        != std::string::npos);
    CHECK(
        error_of("source-max=99999999999999999999").find("must be from 0 to") != std::string::npos);
    CHECK(error_of("source-max=5 6").find("not a number: 5 6") != std::string::npos);
    CHECK(error_of("source-max=+5").find("not a number") != std::string::npos);
    CHECK(error_of("source-prefix4=33").find("source-prefix4: must be from 0 to 32")
        != std::string::npos);
    CHECK(error_of("source-prefix6=129").find("source-prefix6: must be from 0 to 128")
        != std::string::npos);
    CHECK(error_of("idle-timeout=1h").find("idle-timeout: not a number") != std::string::npos);
    CHECK(
        error_of("source-rate=0/5").find("source-rate: a burst needs a rate") != std::string::npos);
    CHECK(
        error_of("source-rate=5/0").find("source-rate: burst must be from 1") != std::string::npos);
    CHECK(error_of("source-rate=5/").find("source-rate: burst not a number") != std::string::npos);
    CHECK(error_of("log-format=xml").find("log-format: must be text or json: xml")
        != std::string::npos);
    CHECK(error_of("metrics=unix:relative").find("metrics: unix:PATH needs an absolute path")
        != std::string::npos);
    CHECK(error_of("metrics=unix:/" + std::string(200, 'a')).find("metrics: the path is longer")
        != std::string::npos);
    CHECK(error_of("metrics=localhost:9100").find("metrics: not a numeric IPv4 address")
        != std::string::npos);
    CHECK(
        error_of("metrics=127.0.0.1").find("metrics: expected ADDRESS:PORT") != std::string::npos);
    CHECK(error_of("proxy-from=lb.example").find("proxy-from: not an IPv4 or IPv6 address")
        != std::string::npos);
}

TEST_CASE("bad -o items name the setting")
{
    CHECK(error_of("", { "source-max=-1" }) == "-o source-max: not a number: -1");
    CHECK(error_of("", { "nope=1" }).rfind("-o nope: unknown setting", 0) == 0);
    CHECK(error_of("", { "source-max" }) == "-o expected name=value: source-max");
    // The file is judged first, and an error there wins.
    CHECK(error_of("deny=x", { "nope=1" }).rfind("settings file", 0) == 0);
}

TEST_CASE("the same scalar twice in one source is a contradiction")
{
    CHECK(error_of("source-max=5\n\nsource-max=5\n")
        == "settings file /etc/sniproxyd.conf line 3: source-max: given twice (first on line 1)");
    CHECK(error_of("", { "log-format=json", "log-format=text" }) == "-o log-format: given twice");
    // List settings are given once per item, in either source.
    CHECK(parse_ok("deny=10.0.0.1\ndeny=10.0.0.2").deny.items().size() == 2);
    CHECK(parse_ok("", { "deny=10.0.0.1", "deny=10.0.0.2" }).deny.items().size() == 2);
}

TEST_CASE("-o replaces the file's scalar and the file's whole list")
{
    const Settings s
        = parse_ok("source-max=5\nallow=10.0.0.0/8\nallow=10.1.0.0/16\ndeny=10.9.9.9\n",
            { "source-max=9", "allow=192.0.2.0/24", "allow=198.51.100.0/24" });
    CHECK(s.source_max == 9);
    CHECK(cidrs(s.allow) == std::vector<std::string> { "192.0.2.0/24", "198.51.100.0/24" });
    CHECK(cidrs(s.deny) == std::vector<std::string> { "10.9.9.9/32" }); // not named by -o: kept
}

TEST_CASE("the rendered settings parse back to the same settings")
{
    const Settings s = parse_ok("allow=10.0.0.0/8\nallow=::1\nsource-max=3\nsource-rate=4/9\n"
                                "source-prefix6=48\nmetrics=unix:/run/m.sock\nlog-format=json\n");
    const std::string text = render_settings(s);
    CHECK(text.find("allow=10.0.0.0/8\nallow=::1/128\n") != std::string::npos);
    CHECK(text.find("source-rate=4/9\n") != std::string::npos);
    CHECK(text.find("# deny: none given\n") != std::string::npos);
    const Settings again = parse_ok(text);
    CHECK(render_settings(again) == text);
    const Settings as_items = parse_ok("", settings_items(s));
    CHECK(render_settings(as_items) == text);
    CHECK(render_settings(parse_ok("")).find("source-rate=0\n") != std::string::npos);
}
