// metrics_listener_test.cc: binding the metrics endpoint as -o metrics names it: a unix:
// socket replaces a stale socket file but nothing else, gets mode 0660, and is removed only
// while it is still ours; ADDR:PORT and *:PORT accept connections.
#include "catch.h"
#include "metrics_listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

using namespace sniproxy;

namespace {

std::string temp_dir()
{
    char tmpl[] = "/tmp/mlt.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    return tmpl;
}

MetricsAddress parse(const std::string& text)
{
    Settings s;
    std::string err;
    REQUIRE(parse_settings("", "", { "metrics=" + text }, &s, &err));
    REQUIRE(s.metrics);
    return *s.metrics;
}

// Port 0 (any free port) is not a valid setting, so these are built by hand.
ListenAddress any_port(int family, bool loopback)
{
    ListenAddress a;
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&a.addr);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : INADDR_ANY);
        a.len = sizeof *sin;
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = loopback ? in6addr_loopback : in6addr_any;
        a.len = sizeof *sin6;
    }
    return a;
}

bool connects_unix(const std::string& path)
{
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
    return connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0;
}

int bound_port(int fd)
{
    sockaddr_storage ss {};
    socklen_t len = sizeof ss;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
    return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

bool connects_v4(int port)
{
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<std::uint16_t>(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
}

} // namespace

TEST_CASE("unix: a stale socket file is replaced, the new one is 0660 and ours to remove")
{
    const std::string dir = temp_dir();
    const std::string path = dir + "/m.sock";
    {
        UniqueFd stale(socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un sun {};
        sun.sun_family = AF_UNIX;
        std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
        REQUIRE(bind(stale.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    }
    MetricsListener l;
    std::string err;
    REQUIRE(bind_metrics_listener(parse("unix:" + path), &l, &err));
    struct stat st { };
    REQUIRE(lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0660);
    CHECK(connects_unix(path));

    SECTION("removed while it is ours")
    {
        remove_socket_file(l);
        CHECK(access(path.c_str(), F_OK) != 0);
    }
    SECTION("a successor's socket (an upgrade's new parent) is left alone")
    {
        MetricsListener successor;
        REQUIRE(bind_metrics_listener(parse("unix:" + path), &successor, &err));
        remove_socket_file(l);
        CHECK(connects_unix(path));
        remove_socket_file(successor);
        CHECK(access(path.c_str(), F_OK) != 0);
    }
    rmdir(dir.c_str());
}

TEST_CASE("unix: anything but a socket at the path is an error, and is kept")
{
    const std::string dir = temp_dir();
    const std::string path = dir + "/data";
    std::ofstream(path) << "precious\n";
    MetricsListener l;
    std::string err;
    CHECK_FALSE(bind_metrics_listener(parse("unix:" + path), &l, &err));
    CHECK(err.find("is not a socket") != std::string::npos);
    std::string kept;
    std::getline(std::ifstream(path), kept);
    CHECK(kept == "precious");
    unlink(path.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("ADDR:PORT and *:PORT listen; a port in use is an error naming it")
{
    MetricsListener l;
    std::string err;
    MetricsAddress loopback { "127.0.0.1:0", { any_port(AF_INET, true) }, "" };
    REQUIRE(bind_metrics_listener(loopback, &l, &err));
    const int port = bound_port(l.fd.get());
    CHECK(connects_v4(port));

    MetricsListener any;
    MetricsAddress wildcard { "*:0", { any_port(AF_INET, false), any_port(AF_INET6, false) }, "" };
    REQUIRE(bind_metrics_listener(wildcard, &any, &err));
    CHECK(connects_v4(bound_port(any.fd.get()))); // IPv4 reaches the one dual-stack socket

    // Another program's socket on the port (no SO_REUSEPORT) makes ours fail loudly.
    UniqueFd other(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(other.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
    REQUIRE(listen(other.get(), 1) == 0);
    MetricsListener taken;
    CHECK_FALSE(bind_metrics_listener(
        parse("127.0.0.1:" + std::to_string(bound_port(other.get()))), &taken, &err));
    CHECK(err.find("cannot listen on metrics 127.0.0.1:") == 0);
}
