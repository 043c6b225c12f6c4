// status_report_test.cc: what `sniproxyctl status` prints for a known snapshot, in both
// forms, exactly; and the whole path (fetch over a socket from a real metrics server child,
// parse, summarize) against counts this test wrote into a worker slot.
#include "catch.h"
#include "metrics_server.h"
#include "metrics_text.h"
#include "openmetrics.h"
#include "status.h"
#include "status_report.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

using namespace sniproxy;

namespace {

Snapshot known()
{
    Snapshot s;
    s.start_time_seconds = 1764600000;
    s.version = "0.1.0";
    RouteTotals ex { "example.com", {}, 110, 2020 };
    ex.results[static_cast<std::size_t>(ConnResult::ok)] = 2;
    ex.results[static_cast<std::size_t>(ConnResult::backend_refused)] = 1;
    RouteTotals dash { "-", {}, 0, 0 };
    dash.results[static_cast<std::size_t>(ConnResult::no_route)] = 4;
    dash.results[static_cast<std::size_t>(ConnResult::limit_rate)] = 1;
    s.routes = { dash, ex };
    s.rejected[static_cast<std::size_t>(RejectReason::limit_rate)] = 1;
    s.hello_buckets[0] = 6;
    s.hello_buckets[3] = 1;
    s.hello_count = 7;
    s.hello_sum_seconds = 0.014;
    s.workers = { { 0, 100, 1, WorkerState::draining, 1, 3, -1 },
        { 1, 200, 2, WorkerState::ready, 2, 5, 11 } };
    s.parent_open_fds = 9;
    return s;
}

StatusReport report_of(const Snapshot& s)
{
    std::vector<MetricSample> samples;
    std::string err;
    REQUIRE(parse_metrics_text(render_metrics(s, MetricsFormat::prometheus), &samples, &err));
    return summarize_metrics(samples);
}

} // namespace

TEST_CASE("status for a person, exactly")
{
    const std::string text = format_status_text(report_of(known()), 1764600000 + 3 * 3600 + 125);
    CHECK(text
        == "sniproxyd 0.1.0, up 3h 02m 05s (since 2025-12-01 14:40:00 UTC)\n"
           "generation 2: 1 worker (ready 1), 2 connections open\n"
           "generation 1: 1 worker (draining 1), 1 connections open\n"
           "  worker 100 (generation 1): 1 open, 3 ended\n"
           "  worker 200 (generation 2): 2 open, 5 ended, 11 descriptors\n"
           "connections by host and result:\n"
           "  -: 5 (limit-rate 1, no-route 4)\n"
           "  example.com: 3 (backend-refused 1, ok 2)\n"
           "bytes by host (up = client to backend):\n"
           "  example.com: up 110, down 2020\n"
           "refused: limit-rate 1\n"
           "hellos: 7, mean 0.002 s, 99% within 0.01 s\n"
           "parent: 9 descriptors\n");
}

TEST_CASE("status as JSON, exactly")
{
    const std::string json = format_status_json(report_of(known()), 1764600000 + 60.5);
    CHECK(json
        == "{\"version\":\"0.1.0\",\"start_time\":1764600000,\"uptime_seconds\":60,"
           "\"generations\":[{\"generation\":2,\"workers\":{\"draining\":0,\"ready\":1,"
           "\"starting\":0},"
           "\"connections_active\":2},{\"generation\":1,\"workers\":{\"draining\":1,\"ready\":0,"
           "\"starting\":0},\"connections_active\":1}],"
           "\"workers\":[{\"pid\":\"100\",\"generation\":1,\"connections_active\":1,"
           "\"connections_ended\":3,\"open_fds\":null},{\"pid\":\"200\",\"generation\":2,"
           "\"connections_active\":2,\"connections_ended\":5,\"open_fds\":11}],"
           "\"routes\":[{\"route\":\"-\",\"connections\":{\"limit-rate\":1,\"no-route\":4},"
           "\"bytes_up\":0,\"bytes_down\":0},{\"route\":\"example.com\",\"connections\":"
           "{\"backend-refused\":1,\"ok\":2},\"bytes_up\":110,\"bytes_down\":2020}],"
           "\"rejected\":{\"denied\":0,\"limit-hellos\":0,\"limit-rate\":1,\"limit-source\":0,"
           "\"other\":0,\"shed\":0},\"hello\":{\"count\":7,\"sum_seconds\":0.014,\"buckets\":["
           "{\"le\":0.001,\"count\":6},{\"le\":0.0025,\"count\":6},{\"le\":0.005,\"count\":6},"
           "{\"le\":0.01,\"count\":7},{\"le\":0.025,\"count\":7},{\"le\":0.05,\"count\":7},"
           "{\"le\":0.1,\"count\":7},{\"le\":0.25,\"count\":7},{\"le\":0.5,\"count\":7},"
           "{\"le\":1,\"count\":7},{\"le\":2.5,\"count\":7},{\"le\":5,\"count\":7},"
           "{\"le\":10,\"count\":7},{\"le\":\"+Inf\",\"count\":7}]},"
           "\"parent_open_fds\":9,\"route_overflow\":0,\"unslotted_workers\":0}\n");
}

TEST_CASE("hostile label values cannot reach the terminal or break the JSON")
{
    Snapshot s = known();
    s.routes[1].route = "x\x1b[2J\"\\";
    const StatusReport r = report_of(s);
    CHECK(format_status_text(r, 0).find("x\\x1b[2J\"\\x5c: 3") != std::string::npos);
    CHECK(format_status_json(r, 0).find("\"route\":\"x\\u001b[2J\\\"\\\\\"") != std::string::npos);
}

TEST_CASE("fetch_metrics scrapes a running metrics server over a Unix socket")
{
    MetricsStore store;
    std::string err;
    REQUIRE(store.create("7.7", &err));
    MetricsSlot worker;
    REQUIRE(worker.attach(store.fd(), store.claim_slot(3), &err));
    worker.connection_done("a.example", "ok", 1, 2, 0.001);
    worker.connection_done("a.example", "timeout", 0, 0, -1);

    char dir[] = "/tmp/status_report_test.XXXXXX";
    REQUIRE(mkdtemp(dir));
    const std::string path = std::string(dir) + "/m.sock";
    UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
    REQUIRE(bind(listener.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    REQUIRE(listen(listener.get(), 8) == 0);
    const pid_t pid = fork();
    if (pid == 0)
        _exit(run_metrics_server(listener.get(), store, {}));

    std::string body;
    const bool ok = fetch_metrics("unix:" + path, 5000, &body, &err);
    std::string missing_err;
    std::string unused;
    const bool missing = fetch_metrics("unix:" + path + ".none", 1000, &unused, &missing_err);
    const bool no_port = fetch_metrics("127.0.0.1", 1000, &unused, &missing_err);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    unlink(path.c_str());
    rmdir(dir);

    INFO(err);
    REQUIRE(ok);
    CHECK_FALSE(missing);
    CHECK_FALSE(no_port);
    std::vector<MetricSample> samples;
    REQUIRE(parse_metrics_text(body, &samples, &err));
    const StatusReport r = summarize_metrics(samples);
    CHECK(r.version == "7.7");
    REQUIRE(r.routes.size() == 1);
    CHECK(r.routes[0].route == "a.example");
    CHECK(r.routes[0].results.at("ok") == 1);
    CHECK(r.routes[0].results.at("timeout") == 1);
    REQUIRE(r.generations.size() == 1);
    CHECK(r.generations[0].generation == 3);
    CHECK(r.generations[0].workers.at("starting") == 1);
}
