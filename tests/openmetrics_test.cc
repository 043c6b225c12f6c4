// openmetrics_test.cc: the exposition text for a crafted snapshot, exactly, in both formats;
// the Accept negotiation; and, when they are installed, real parsers: promtool (Prometheus
// text) and the prometheus_client OpenMetrics parser (strict about # EOF, _total, le).
#include "catch.h"
#include "openmetrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace sniproxy;

namespace {

Snapshot crafted()
{
    Snapshot s;
    s.start_time_seconds = 1764612345.5;
    s.version = "0.1.0";
    s.moved = { { 2, 5 }, { 3, 1 } };
    RouteTotals dash;
    dash.route = "-";
    dash.results[static_cast<std::size_t>(ConnResult::bad_hello)] = 1;
    dash.results[static_cast<std::size_t>(ConnResult::limit_rate)] = 2;
    RouteTotals odd; // the reader never yields such a name; the renderer escapes anyway
    odd.route = "a\"b\\c\nd";
    odd.results[static_cast<std::size_t>(ConnResult::ok)] = 1;
    odd.up = 1;
    RouteTotals ex;
    ex.route = "example.com";
    ex.results[static_cast<std::size_t>(ConnResult::ok)] = 2;
    ex.results[static_cast<std::size_t>(ConnResult::backend_refused)] = 1;
    ex.up = 110;
    ex.down = 2020;
    s.routes = { dash, odd, ex };
    s.rejected[static_cast<std::size_t>(RejectReason::limit_rate)] = 2;
    s.hello_buckets[1] = 1;
    s.hello_buckets[2] = 2;
    s.hello_buckets[13] = 1;
    s.hello_count = 4;
    s.hello_sum_seconds = 11.009;
    WorkerTotals w1 { 0, 4242, 1, WorkerState::draining, 1, 7, -1 };
    WorkerTotals w2 { 1, 4343, 2, WorkerState::ready, 3, 0, 9 };
    s.workers = { w1, w2 };
    s.parent_open_fds = 12;
    return s;
}

// Body lines shared by both formats, from sniproxyd_connections_total to the histogram.
const char* const samples = R"(sniproxyd_connections_total{route="-",result="bad-hello"} 1
sniproxyd_connections_total{route="-",result="limit-rate"} 2
sniproxyd_connections_total{route="a\"b\\c\nd",result="ok"} 1
sniproxyd_connections_total{route="example.com",result="ok"} 2
sniproxyd_connections_total{route="example.com",result="backend-refused"} 1
)";

std::string run_filter(const std::string& command, const std::string& input, int* status)
{
    char path[] = "/tmp/openmetrics_test.XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, input.data(), input.size()) == static_cast<ssize_t>(input.size()));
    close(fd);
    std::string out;
    if (std::FILE* p = popen((command + " < " + path + " 2>&1").c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
            out.append(buf, n);
        *status = pclose(p);
    }
    unlink(path);
    return out;
}

bool have(const char* command)
{
    return std::system((std::string(command) + " >/dev/null 2>&1").c_str()) == 0;
}

} // namespace

TEST_CASE("OpenMetrics text for a crafted snapshot, exactly")
{
    const std::string text = render_metrics(crafted(), MetricsFormat::openmetrics);
    const std::string expected
        = std::string(R"(# HELP sniproxyd_connections Connections that ended, by route and result.
# TYPE sniproxyd_connections counter
)") + samples
        + R"(# HELP sniproxyd_bytes Bytes relayed, by route and direction (up: client to backend).
# TYPE sniproxyd_bytes counter
sniproxyd_bytes_total{route="a\"b\\c\nd",direction="up"} 1
sniproxyd_bytes_total{route="a\"b\\c\nd",direction="down"} 0
sniproxyd_bytes_total{route="example.com",direction="up"} 110
sniproxyd_bytes_total{route="example.com",direction="down"} 2020
# HELP sniproxyd_rejected Connections refused, by reason.
# TYPE sniproxyd_rejected counter
sniproxyd_rejected_total{reason="denied"} 0
sniproxyd_rejected_total{reason="limit-source"} 0
sniproxyd_rejected_total{reason="limit-rate"} 2
sniproxyd_rejected_total{reason="limit-hellos"} 0
sniproxyd_rejected_total{reason="shed"} 0
sniproxyd_rejected_total{reason="other"} 0
# HELP sniproxyd_connections_active Connections open now, by generation.
# TYPE sniproxyd_connections_active gauge
sniproxyd_connections_active{generation="1"} 1
sniproxyd_connections_active{generation="2"} 3
# HELP sniproxyd_connections_moved Established connections moved into a generation (rollover, upgrade), by generation.
# TYPE sniproxyd_connections_moved counter
sniproxyd_connections_moved_total{generation="2"} 5
sniproxyd_connections_moved_total{generation="3"} 1
# HELP sniproxyd_workers Worker processes, by generation and state.
# TYPE sniproxyd_workers gauge
sniproxyd_workers{generation="1",state="starting"} 0
sniproxyd_workers{generation="1",state="ready"} 0
sniproxyd_workers{generation="1",state="draining"} 1
sniproxyd_workers{generation="2",state="starting"} 0
sniproxyd_workers{generation="2",state="ready"} 1
sniproxyd_workers{generation="2",state="draining"} 0
# HELP sniproxyd_worker_connections_active Connections open now, by worker.
# TYPE sniproxyd_worker_connections_active gauge
sniproxyd_worker_connections_active{generation="1",pid="4242"} 1
sniproxyd_worker_connections_active{generation="2",pid="4343"} 3
# HELP sniproxyd_worker_connections Connections that ended, by worker.
# TYPE sniproxyd_worker_connections counter
sniproxyd_worker_connections_total{generation="1",pid="4242"} 7
sniproxyd_worker_connections_total{generation="2",pid="4343"} 0
# HELP sniproxyd_hello_duration_seconds Time from accept to the route decided.
# TYPE sniproxyd_hello_duration_seconds histogram
sniproxyd_hello_duration_seconds_bucket{le="0.001"} 0
sniproxyd_hello_duration_seconds_bucket{le="0.0025"} 1
sniproxyd_hello_duration_seconds_bucket{le="0.005"} 3
sniproxyd_hello_duration_seconds_bucket{le="0.01"} 3
sniproxyd_hello_duration_seconds_bucket{le="0.025"} 3
sniproxyd_hello_duration_seconds_bucket{le="0.05"} 3
sniproxyd_hello_duration_seconds_bucket{le="0.1"} 3
sniproxyd_hello_duration_seconds_bucket{le="0.25"} 3
sniproxyd_hello_duration_seconds_bucket{le="0.5"} 3
sniproxyd_hello_duration_seconds_bucket{le="1.0"} 3
sniproxyd_hello_duration_seconds_bucket{le="2.5"} 3
sniproxyd_hello_duration_seconds_bucket{le="5.0"} 3
sniproxyd_hello_duration_seconds_bucket{le="10.0"} 3
sniproxyd_hello_duration_seconds_bucket{le="+Inf"} 4
sniproxyd_hello_duration_seconds_sum 11.009
sniproxyd_hello_duration_seconds_count 4
# HELP sniproxyd_open_fds Open file descriptors, by process.
# TYPE sniproxyd_open_fds gauge
sniproxyd_open_fds{process="parent"} 12
sniproxyd_open_fds{process="worker",pid="4343"} 9
# HELP sniproxyd_route_overflow Connections counted under route - because a worker's route table was full.
# TYPE sniproxyd_route_overflow counter
sniproxyd_route_overflow_total 0
# HELP sniproxyd_unslotted_workers Workers started while every metrics slot was taken (their connections are not counted).
# TYPE sniproxyd_unslotted_workers counter
sniproxyd_unslotted_workers_total 0
# HELP sniproxyd_start_time_seconds When the daemon started, in Unix time.
# TYPE sniproxyd_start_time_seconds gauge
sniproxyd_start_time_seconds 1764612345.5
# HELP sniproxyd_build The running version.
# TYPE sniproxyd_build info
sniproxyd_build_info{version="0.1.0"} 1
# EOF
)";
    CHECK(text == expected);
}

TEST_CASE("Prometheus 0.0.4 text: _total on counter families, gauge for info, le=\"1\", no EOF")
{
    const std::string text = render_metrics(crafted(), MetricsFormat::prometheus);
    CHECK(text.find("# TYPE sniproxyd_connections_total counter\n") != std::string::npos);
    CHECK(text.find(samples) != std::string::npos);
    CHECK(
        text.find("# TYPE sniproxyd_build_info gauge\nsniproxyd_build_info{version=\"0.1.0\"} 1\n")
        != std::string::npos);
    CHECK(text.find("sniproxyd_hello_duration_seconds_bucket{le=\"1\"} 3\n") != std::string::npos);
    CHECK(text.find("le=\"1.0\"") == std::string::npos);
    CHECK(text.find("# EOF") == std::string::npos);
    CHECK(text.back() == '\n');
}

TEST_CASE("the scraper's Accept header picks the format")
{
    // What Prometheus 2.x sends.
    CHECK(choose_metrics_format("application/openmetrics-text;version=1.0.0,application/"
                                "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;"
                                "q=0.5,*/*;q=0.1")
        == MetricsFormat::openmetrics);
    CHECK(choose_metrics_format("") == MetricsFormat::prometheus);
    CHECK(choose_metrics_format("*/*") == MetricsFormat::prometheus); // curl
    CHECK(choose_metrics_format("text/plain;version=0.0.4") == MetricsFormat::prometheus);
    CHECK(choose_metrics_format("text/plain, application/openmetrics-text;q=0.5")
        == MetricsFormat::prometheus);
    CHECK(choose_metrics_format("Application/OpenMetrics-Text ; q=0.9 , text/plain;q=0.2")
        == MetricsFormat::openmetrics);
    CHECK(choose_metrics_format("application/openmetrics-text;q=0") == MetricsFormat::prometheus);
    CHECK(choose_metrics_format("application/openmetrics-text;q=x") == MetricsFormat::prometheus);
    CHECK(metrics_content_type(MetricsFormat::openmetrics)
        == "application/openmetrics-text; version=1.0.0; charset=utf-8");
    CHECK(metrics_content_type(MetricsFormat::prometheus)
        == "text/plain; version=0.0.4; charset=utf-8");
}

TEST_CASE("label values and numbers as the formats want them")
{
    CHECK(escape_label_value("plain.example") == "plain.example");
    CHECK(escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
    CHECK(format_metric_number(0.0025) == "0.0025");
    CHECK(format_metric_number(10) == "10");
    CHECK(format_metric_number(10, true) == "10.0");
    CHECK(format_metric_number(1e21, true) == "1e+21");
    CHECK(format_metric_number(1.0 / 0.0) == "+Inf");
}

TEST_CASE("promtool accepts the Prometheus text (when installed)")
{
    if (!have("promtool --version")) {
        WARN("skipped: promtool not installed (apt-get install prometheus)");
        return;
    }
    int status = -1;
    const std::string out = run_filter(
        "promtool check metrics", render_metrics(crafted(), MetricsFormat::prometheus), &status);
    INFO(out);
    CHECK(status == 0);
    // And it is not a rubber stamp: a broken exposition is refused.
    const std::string out2 = run_filter("promtool check metrics", "x{a=\"b} 1\n", &status);
    CHECK(status != 0);
}

TEST_CASE("the OpenMetrics parser of prometheus_client accepts it (when installed)")
{
    const char* python = "/usr/bin/python3";
    if (!have("/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser'")) {
        WARN("skipped: python3-prometheus-client not installed");
        return;
    }
    const std::string parse = std::string(python)
        + " -c 'import sys; from prometheus_client.openmetrics.parser import "
          "text_string_to_metric_families as p; fams = list(p(sys.stdin.read())); "
          "print(sum(len(f.samples) for f in fams))'";
    int status = -1;
    const std::string out
        = run_filter(parse, render_metrics(crafted(), MetricsFormat::openmetrics), &status);
    INFO(out);
    CHECK(status == 0);
    CHECK(out == "51\n"); // the samples above, each once
    // Without # EOF the parser refuses, so the check above means something.
    std::string cut = render_metrics(crafted(), MetricsFormat::openmetrics);
    cut.resize(cut.size() - 6);
    run_filter(parse, cut, &status);
    CHECK(status != 0);
}
