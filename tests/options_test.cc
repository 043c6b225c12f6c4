// options_test.cc: the command line contract of sniproxyd(8).
#include "catch.h"
#include "config.h"
#include "options.h"

#include <string>
#include <vector>

using namespace sniproxy;

namespace {
std::string parse(std::vector<std::string> args, Options& o)
{
    args.insert(args.begin(), "sniproxyd");
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string err;
    if (parse_options(static_cast<int>(args.size()), argv.data(), &o, &err))
        return "";
    CHECK(!err.empty());
    return err;
}
} // namespace

TEST_CASE("defaults come from configure")
{
    Options o;
    REQUIRE(parse({}, o).empty());
    CHECK(o.hosts_dir == DEFAULT_HOSTS_DIR);
    CHECK(o.user == DEFAULT_USER);
    CHECK(o.hello_timeout == 10);
    CHECK(o.grace == 10);
    CHECK(o.workers == 0);
    CHECK(o.listen.empty());
    CHECK(!o.foreground);
    CHECK(!o.is_worker);
}

TEST_CASE("every documented option")
{
    Options o;
    REQUIRE(parse(
        { "-d", "-n", "-vv", "-H", "/srv/hosts", "-l", "127.0.0.1:8443", "-l", "[::1]:8443", "-u",
            "nobody", "-w", "3", "-T", "5", "-g", "0", "-p", "/run/s.pid", "-a", "-c", "100" },
        o)
                .empty());
    CHECK(o.foreground);
    CHECK(o.check_only);
    CHECK(o.verbosity == 2);
    CHECK(o.hosts_dir == "/srv/hosts");
    CHECK(o.listen == std::vector<std::string> { "127.0.0.1:8443", "[::1]:8443" });
    CHECK(o.user == "nobody");
    CHECK(o.workers == 3);
    CHECK(o.hello_timeout == 5);
    CHECK(o.grace == 0);
    CHECK(o.pidfile == "/run/s.pid");
    CHECK(o.all_hashed);
    CHECK(o.max_connections == 100);
}

TEST_CASE("bad values get one-line errors naming the option")
{
    Options o;
    CHECK(parse({ "-w", "0" }, o) == "-w: '0' is not a whole number from 1 to 256");
    CHECK(parse({ "-w", "two" }, o).rfind("-w:", 0) == 0);
    CHECK(parse({ "-T", "0" }, o).rfind("-T:", 0) == 0);
    CHECK(parse({ "-T", "5s" }, o).rfind("-T:", 0) == 0);
    CHECK(parse({ "-g", "-1" }, o).rfind("-g:", 0) == 0);
    CHECK(parse({ "-T" }, o) == "-T needs a value");
    CHECK(parse({ "-x" }, o) == "unknown option -x");
    CHECK(parse({ "extra" }, o) == "unexpected argument 'extra'");
    CHECK(parse({ "-H", "" }, o).rfind("-H:", 0) == 0);
    CHECK(parse({ "-W", "garbage" }, o) == "-W is internal to sniproxyd");
}

TEST_CASE("worker arguments round-trip through the parser")
{
    Options o;
    REQUIRE(parse({ "-H", "/srv/h", "-T", "7", "-v", "-a" }, o).empty());
    Options::Worker spec { { 1000, 1001, true }, 3, 5 };
    spec.metrics_fd = 4;
    spec.metrics_slot = 17;
    spec.hosts_fd = 5;
    Settings settings;
    settings.log_format = LogFormat::json;
    const auto args = worker_arguments(o, spec, settings);
    std::vector<std::string> tail(args.begin() + 1, args.end());
    Options w;
    REQUIRE(parse(tail, w).empty());
    CHECK(w.is_worker);
    CHECK(w.worker.channel_fd == 3);
    CHECK(w.worker.generation == 5);
    CHECK(w.worker.hosts_fd == 5);
    CHECK(w.worker.uid == 1000);
    CHECK(w.worker.gid == 1001);
    CHECK(w.worker.jail);
    CHECK(w.hosts_dir == "/srv/h");
    CHECK(w.hello_timeout == 7);
    CHECK(w.verbosity == 1);
    CHECK(w.all_hashed);
    CHECK(w.worker.metrics_fd == 4);
    CHECK(w.worker.metrics_slot == 17);
    CHECK_FALSE(w.is_metrics_server);
    Settings back;
    std::string err;
    REQUIRE(parse_settings("", "", w.settings, &back, &err));
    CHECK(back.log_format == LogFormat::json);
}

TEST_CASE("metrics server arguments round-trip through the parser")
{
    Options o;
    REQUIRE(parse({ "-H", "/srv/h", "-v" }, o).empty());
    Options::Worker spec { { 1000, 1001, true }, 3, 0 };
    spec.metrics_listen_fd = 4;
    spec.metrics_fd = 5;
    const auto args = metrics_server_arguments(o, spec);
    std::vector<std::string> tail(args.begin() + 1, args.end());
    Options s;
    REQUIRE(parse(tail, s).empty());
    CHECK(s.is_worker);
    CHECK(s.is_metrics_server);
    CHECK(s.worker.channel_fd == 3);
    CHECK(s.worker.metrics_listen_fd == 4);
    CHECK(s.worker.metrics_fd == 5);
    CHECK(s.worker.uid == 1000);
    CHECK(s.hosts_dir == "/srv/h");
    CHECK(parse({ "-S", "4:5" }, s) == "-S is internal to sniproxyd");
    CHECK(parse({ "-M", "4:x" }, s) == "-M is internal to sniproxyd");
}

TEST_CASE("-f and repeated -o are kept for load_settings")
{
    Options o;
    REQUIRE(parse({ "-f", "/etc/s.conf", "-o", "source-max=5", "-o", "deny=10.0.0.0/8" }, o).empty());
    CHECK(o.settings_file == "/etc/s.conf");
    CHECK(o.settings == std::vector<std::string> { "source-max=5", "deny=10.0.0.0/8" });
    CHECK(parse({ "-o" }, o) == "-o needs a value");
}
