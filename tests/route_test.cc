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

namespace {
HelloInfo hello_alpn(const char* sni, std::vector<std::string> alpn)
{
    HelloInfo h = hello(sni);
    h.alpn = std::move(alpn);
    return h;
}
} // namespace

TEST_CASE("an alpn/ entry wins over HOST/tls-socket; the entry's PROXY flags still apply")
{
    FakeFs fs;
    fs.paths = { "example.com/tls-socket", "example.com/alpn", "example.com/send-proxy-v2",
        "example.com/alpn/acme-tls%2f1/tls-socket" };
    auto d = decide_route(hello_alpn("example.com", { "acme-tls/1" }), false, fs.fn());
    CHECK(d.route.name == "example.com");
    CHECK(d.route.socket == "example.com/alpn/acme-tls%2f1/tls-socket");
    CHECK(d.route.alpn == "acme-tls/1");
    CHECK(d.route.proxy == ProxyHeader::v2);
    CHECK_FALSE(d.route.proxy_ja4);

    // No entry for what the client offers: the host's socket, no alpn= in the log.
    d = decide_route(hello_alpn("example.com", { "h2", "http/1.1" }), false, fs.fn());
    CHECK(d.route.socket == "example.com/tls-socket");
    CHECK(d.route.alpn.empty());
}

TEST_CASE("the client's first offered protocol that has an entry wins, in the client's order")
{
    FakeFs fs;
    fs.paths = { "example.com/tls-socket", "example.com/alpn", "example.com/alpn/h2/tls-socket",
        "example.com/alpn/http%2f1.1/tls-socket" };
    auto d
        = decide_route(hello_alpn("example.com", { "spdy/3", "http/1.1", "h2" }), false, fs.fn());
    CHECK(d.route.socket == "example.com/alpn/http%2f1.1/tls-socket");
    CHECK(d.route.alpn == "http/1.1");
    d = decide_route(hello_alpn("example.com", { "h2", "http/1.1" }), false, fs.fn());
    CHECK(d.route.socket == "example.com/alpn/h2/tls-socket");
    CHECK(d.route.alpn == "h2");
}

TEST_CASE("without HOST/alpn no per-protocol path is asked about")
{
    FakeFs fs;
    fs.paths = { "example.com/tls-socket" };
    auto d = decide_route(hello_alpn("example.com", { "h2", "http/1.1" }), false, fs.fn());
    CHECK(d.route.socket == "example.com/tls-socket");
    for (const std::string& p : fs.asked)
        CHECK(p.find("alpn/") == std::string::npos);
}

TEST_CASE("wildcard and _default entries can have alpn/ too")
{
    FakeFs fs;
    fs.paths = { "*.example.com/tls-socket", "*.example.com/alpn",
        "*.example.com/alpn/acme-tls%2f1/tls-socket", "_default/tls-socket", "_default/alpn",
        "_default/alpn/h2/tls-socket" };
    auto d = decide_route(hello_alpn("www.example.com", { "acme-tls/1" }), false, fs.fn());
    CHECK(d.route.name == "*.example.com");
    CHECK(d.route.socket == "*.example.com/alpn/acme-tls%2f1/tls-socket");
    d = decide_route(hello_alpn("other.org", { "h2" }), false, fs.fn());
    CHECK(d.route.name == "_default");
    CHECK(d.route.socket == "_default/alpn/h2/tls-socket");
    CHECK(d.route.alpn == "h2");
}

TEST_CASE("no SNI goes to _nosni when it exists, else _default; an unknown SNI never to _nosni")
{
    FakeFs fs;
    fs.paths = { "_nosni/tls-socket", "_default/tls-socket" };
    auto d = decide_route(hello(nullptr), false, fs.fn());
    CHECK(d.route.name == "_nosni");
    CHECK(d.route.socket == "_nosni/tls-socket");
    CHECK(d.sni == "-");
    CHECK(decide_route(hello("unknown.example"), false, fs.fn()).route.name == "_default");
    // Never hashed, even with -a.
    CHECK(decide_route(hello(nullptr), true, fs.fn()).route.socket == "_nosni/tls-socket");

    fs.paths = { "_default/tls-socket" };
    CHECK(decide_route(hello(nullptr), false, fs.fn()).route.name == "_default");
    fs.paths = { "_nosni/tls-socket" };
    CHECK(decide_route(hello("unknown.example"), false, fs.fn()).status == RouteStatus::no_route);
}

TEST_CASE("send-proxy-v2-ja4 asks for the JA4 TLV only with send-proxy-v2")
{
    FakeFs fs;
    fs.paths = { "a.com/tls-socket", "a.com/send-proxy-v2", "a.com/send-proxy-v2-ja4",
        "b.com/tls-socket", "b.com/send-proxy-v1", "b.com/send-proxy-v2-ja4" };
    auto d = decide_route(hello("a.com"), false, fs.fn());
    CHECK(d.route.proxy == ProxyHeader::v2);
    CHECK(d.route.proxy_ja4);
    d = decide_route(hello("b.com"), false, fs.fn());
    CHECK(d.route.proxy == ProxyHeader::v1);
    CHECK_FALSE(d.route.proxy_ja4);
}
