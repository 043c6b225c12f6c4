// route_test.cc: route selection by existence, against a fake filesystem.
#include "catch.h"
#include "hashed_name.h"
#include "route.h"

#include <set>

using namespace sniproxy;

namespace {
HelloInfo hello(const char* sni)
{
    HelloInfo h;
    if (sni) {
        h.has_sni = true;
        h.sni = sni;
    }
    return h;
}

struct FakeFs {
    std::set<std::string> paths;
    std::vector<std::string> asked;
    PathExists fn()
    {
        return [this](const std::string& p) {
            asked.push_back(p);
            return paths.count(p) > 0;
        };
    }
};
} // namespace

TEST_CASE("exact, then wildcard, then _default")
{
    FakeFs fs;
    fs.paths = { "example.com/tls-socket", "*.apps.example.com/tls-socket", "_default/tls-socket" };
    auto d = decide_route(hello("Example.COM."), false, fs.fn());
    CHECK(d.status == RouteStatus::found);
    CHECK(d.route.name == "example.com");
    CHECK(d.route.socket == "example.com/tls-socket");
    CHECK(d.sni == "example.com");

    d = decide_route(hello("x.apps.example.com"), false, fs.fn());
    CHECK(d.route.name == "*.apps.example.com");

    // Exactly one more label: a.b.apps.example.com does not match the wildcard.
    d = decide_route(hello("a.b.apps.example.com"), false, fs.fn());
    CHECK(d.route.name == "_default");

    d = decide_route(hello(nullptr), false, fs.fn());
    CHECK(d.route.name == "_default");
    CHECK(d.sni == "-");
}

TEST_CASE("no route, and invalid SNI never reaches the filesystem")
{
    FakeFs fs;
    fs.paths = { "_default/tls-socket" };
    auto d = decide_route(hello("../etc/passwd"), false, fs.fn());
    CHECK(d.status == RouteStatus::bad_sni);
    CHECK(d.reason == "empty-label");
    CHECK(decide_route(hello("a/b.com"), false, fs.fn()).reason == "bad-char");
    CHECK(fs.asked.empty());
    d = decide_route(hello("127.0.0.1"), false, fs.fn());
    CHECK(d.status == RouteStatus::bad_sni);
    d = decide_route(hello("evil\n.com"), false, fs.fn());
    CHECK(d.sni == "evil\n.com"); // raw: the log line escapes it (access_log.h)
    CHECK(fs.asked.empty());

    fs.paths.clear();
    d = decide_route(hello("example.com"), false, fs.fn());
    CHECK(d.status == RouteStatus::no_route);
}

TEST_CASE("PROXY header flags, v2 preferred when both exist")
{
    FakeFs fs;
    fs.paths = { "a.com/tls-socket", "a.com/send-proxy-v1", "b.com/tls-socket",
        "b.com/send-proxy-v1", "b.com/send-proxy-v2" };
    CHECK(decide_route(hello("a.com"), false, fs.fn()).route.proxy == ProxyHeader::v1);
    CHECK(decide_route(hello("b.com"), false, fs.fn()).route.proxy == ProxyHeader::v2);
}

TEST_CASE("hashed directories: long names always, every name with -a")
{
    FakeFs fs;
    const std::string long_name = std::string(60, 'a') + "." + std::string(60, 'b') + ".example";
    fs.paths
        = { hashed_name(long_name) + "/tls-socket", hashed_name("example.com") + "/tls-socket" };
    auto d = decide_route(hello(long_name.c_str()), false, fs.fn());
    CHECK(d.status == RouteStatus::found);
    CHECK(d.route.socket.size() <= max_unix_path);

    CHECK(decide_route(hello("example.com"), false, fs.fn()).status == RouteStatus::no_route);
    CHECK(decide_route(hello("example.com"), true, fs.fn()).status == RouteStatus::found);
}
