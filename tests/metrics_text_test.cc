// metrics_text_test.cc: reading exposition text back: what render_metrics writes comes
// back sample for sample, escapes undone; malformed lines are errors naming the line.
#include "catch.h"
#include "metrics_text.h"
#include "openmetrics.h"

#include <cmath>

using namespace sniproxy;

TEST_CASE("samples, labels and escapes are read back")
{
    std::vector<MetricSample> out;
    std::string err;
    REQUIRE(parse_metrics_text("# HELP x y\n# TYPE x counter\n"
                               "x_total{route=\"a\\\"b\\\\c\\nd\",result=\"ok\"} 3\n"
                               "up 1 1700000000000\r\n"
                               "h_bucket{le=\"+Inf\"} 4\n"
                               "g -2.5e-3\n"
                               "inf +Inf\n"
                               "trailing{a=\"b\",} 1\n"
                               "# EOF\n",
        &out, &err));
    REQUIRE(out.size() == 6);
    CHECK(out[0].name == "x_total");
    CHECK(out[0].label("route") == "a\"b\\c\nd");
    CHECK(out[0].label("result") == "ok");
    CHECK(out[0].label("nope").empty());
    CHECK(out[0].value == 3);
    CHECK(out[1].name == "up");
    CHECK(out[1].value == 1); // the timestamp is not the value
    CHECK(out[2].label("le") == "+Inf");
    CHECK(out[3].value == Approx(-0.0025));
    CHECK(std::isinf(out[4].value));
    CHECK(out[5].label("a") == "b");
}

TEST_CASE("malformed lines are refused with their number")
{
    for (const char* bad : { "x{a=\"b} 1", "x{a=b} 1", "x 1x", "x", "{a=\"b\"} 1", "x{a=\"b\"}1",
             "x{a=\"b\\", "9x 1" }) {
        std::vector<MetricSample> out;
        std::string err;
        INFO(bad);
        CHECK_FALSE(parse_metrics_text(std::string("ok 1\n") + bad + "\n", &out, &err));
        CHECK(err.starts_with("line 2 of the metrics: "));
    }
}

TEST_CASE("everything render_metrics writes parses back")
{
    Snapshot s;
    s.version = "0.1.0";
    s.routes.push_back({ "example.com", {}, 5, 6 });
    s.routes[0].results[0] = 2;
    for (const auto format : { MetricsFormat::openmetrics, MetricsFormat::prometheus }) {
        std::vector<MetricSample> out;
        std::string err;
        REQUIRE(parse_metrics_text(render_metrics(s, format), &out, &err));
        bool seen = false;
        for (const MetricSample& m : out)
            if (m.name == "sniproxyd_connections_total" && m.label("route") == "example.com"
                && m.label("result") == "ok")
                seen = m.value == 2;
        CHECK(seen);
    }
}
