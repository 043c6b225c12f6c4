// metrics_server_test.cc: the metrics server run in a forked child, as the daemon runs it,
// once unconfined and once under its seccomp allowlist, and scraped over loopback TCP and a
// Unix socket: what a scraper gets, what hostile scrapers get, the cap on scrapes, and the
// exit when the parent's end closes. The counts come from a worker slot this test writes.
#include "catch.h"
#include "metrics_seccomp.h"
#include "metrics_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace sniproxy;

namespace {

struct Address {
    sockaddr_storage ss {};
    socklen_t len = 0;
};

UniqueFd tcp_listener(Address* addr)
{
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
    REQUIRE(listen(fd.get(), 1024) == 0);
    addr->len = sizeof addr->ss;
    REQUIRE(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr->ss), &addr->len) == 0);
    return fd;
}

UniqueFd unix_listener(const std::string& path, Address* addr)
{
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
    unlink(path.c_str());
    REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    REQUIRE(listen(fd.get(), 16) == 0);
    std::memcpy(&addr->ss, &sun, sizeof sun);
    addr->len = sizeof sun;
    return fd;
}

UniqueFd connect_to(const Address& a)
{
    UniqueFd fd(socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.ss), a.len) == 0);
    return fd;
}

void send_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0)
            return; // the server may close early; what it answered is what counts
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Everything until EOF (or reset), waiting at most timeout_ms in all.
std::string read_to_end(int fd, int timeout_ms = 5000)
{
    std::string out;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now())
                              .count();
        pollfd p { fd, POLLIN, 0 };
        if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0)
            return out + "<timeout>";
        char buf[65536];
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

std::string scrape(const Address& a, std::string_view request)
{
    UniqueFd fd = connect_to(a);
    send_all(fd.get(), request);
    return read_to_end(fd.get());
}

std::string body_of(const std::string& answer)
{
    const std::size_t end = answer.find("\r\n\r\n");
    return end == std::string::npos ? "" : answer.substr(end + 4);
}

// The server in a child; killed and reaped when the test leaves, whatever happens.
struct ServerChild {
    pid_t pid = -1;
    UniqueFd parent_end;
    int status = -1;

    ServerChild(
        int listen_fd, const MetricsStore& store, MetricsServerOptions options, bool sandboxed)
    {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(sv[0]);
            options.parent_fd = sv[1];
            if (sandboxed)
                options.enter_sandbox = [] {
                    std::string err;
                    if (sandbox_metrics_server({}, nullptr, &err))
                        return true;
                    std::fprintf(stderr, "%s\n", err.c_str());
                    return false;
                };
            // As the daemon starts it: with a read-only view of the region.
            UniqueFd ro;
            MetricsStore view;
            std::string err;
            if (!store.readonly_fd(&ro, &err) || !view.open_readonly(ro.get(), &err))
                _exit(3);
            ro.reset();
            _exit(run_metrics_server(listen_fd, view, options));
        }
        close(sv[1]);
        parent_end.reset(sv[0]);
    }
    // Closes the parent's end and waits for the server to leave on its own.
    int stop()
    {
        parent_end.reset();
        for (int i = 0; i < 500 && pid > 0; ++i) {
            if (waitpid(pid, &status, WNOHANG) == pid)
                pid = -1;
            else
                usleep(10000);
        }
        return status;
    }
    ~ServerChild()
    {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
    }
};

const char* const om_request
    = "GET /metrics HTTP/1.1\r\nHost: x\r\n"
      "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";

void scrapes_answer_from_the_live_store(bool sandboxed)
{
    MetricsStore store;
    std::string err;
    REQUIRE(store.create("9.9.9", &err));
    MetricsSlot worker;
    const int slot = store.claim_slot(1);
    REQUIRE(worker.attach(store.fd(), slot, &err));
    worker.connection_done("example.com", "ok", 10, 20, 0.001);

    Address a;
    UniqueFd listener = tcp_listener(&a);
    MetricsServerOptions options;
    options.request_timeout_ms = 300;
    ServerChild server(listener.get(), store, options, sandboxed);

    std::string answer = scrape(a, om_request);
    REQUIRE(answer.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(answer.find(
              "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n")
        != std::string::npos);
    const std::string body = body_of(answer);
    CHECK(answer.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n")
        != std::string::npos);
    CHECK(body.find("sniproxyd_connections_total{route=\"example.com\",result=\"ok\"} 1\n")
        != std::string::npos);
    CHECK(body.find("sniproxyd_build_info{version=\"9.9.9\"} 1\n") != std::string::npos);
    CHECK(body.ends_with("# EOF\n"));

    // Counted after the first scrape: the next one sees it (no copy, no restart).
    worker.connection_done("example.com", "ok", 1, 1, 0.001);
    worker.connection_done("-", "no-route", 0, 0, 0.001);
    answer = scrape(a, "GET / HTTP/1.0\r\n\r\n");
    REQUIRE(answer.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(answer.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n")
        != std::string::npos);
    CHECK(answer.find("sniproxyd_connections_total{route=\"example.com\",result=\"ok\"} 2\n")
        != std::string::npos);
    CHECK(answer.find("sniproxyd_connections_total{route=\"-\",result=\"no-route\"} 1\n")
        != std::string::npos);

    CHECK(scrape(a, "GET /admin HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
    answer = scrape(a, "POST /metrics HTTP/1.1\r\n\r\n");
    CHECK(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    CHECK(answer.find("\r\nAllow: GET\r\n") != std::string::npos);
    CHECK(scrape(a, std::string("\x16\x03\x01\x00\x05hello", 10))
              .starts_with("HTTP/1.1 400 Bad Request\r\n"));
    // 1 MiB of request line: refused at 8 KiB, and the answer still arrives.
    CHECK(scrape(a, "GET /" + std::string(1 << 20, 'a'))
              .starts_with("HTTP/1.1 414 URI Too Long\r\n"));
    // Half a request, then silence: 408 once the request time is up.
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(scrape(a, "GET /metrics HTTP/1.1\r\n").starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(250));

    // The parent's end closes: the server leaves by itself, with status 0.
    const int status = server.stop();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

} // namespace

TEST_CASE("scrapes are answered from the live store; bad requests get their status")
{
    scrapes_answer_from_the_live_store(false);
}

TEST_CASE("the same under the metrics server's seccomp allowlist")
{
    scrapes_answer_from_the_live_store(true);
}

TEST_CASE("over a Unix socket too")
{
    MetricsStore store;
    std::string err;
    REQUIRE(store.create("1", &err));
    char dir[] = "/tmp/metrics_server_test.XXXXXX";
    REQUIRE(mkdtemp(dir));
    const std::string path = std::string(dir) + "/metrics.sock";
    Address a;
    UniqueFd listener = unix_listener(path, &a);
    ServerChild server(listener.get(), store, {}, true);
    CHECK(scrape(a, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(WEXITSTATUS(server.stop()) == 0);
    unlink(path.c_str());
    rmdir(dir);
}

TEST_CASE("scrapes over the cap are closed at once; the cap frees when they end")
{
    MetricsStore store;
    std::string err;
    REQUIRE(store.create("1", &err));
    Address a;
    UniqueFd listener = tcp_listener(&a);
    MetricsServerOptions options;
    options.max_clients = 4;
    options.request_timeout_ms = 1500;
    ServerChild server(listener.get(), store, options, true);

    std::vector<UniqueFd> slow;
    for (int i = 0; i < 4; ++i) {
        slow.push_back(connect_to(a));
        send_all(slow.back().get(), "GET /met"); // and nothing more
    }
    usleep(100000); // all four accepted
    // Many more at once: each is closed without an answer, promptly, not after a timeout.
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) {
        UniqueFd extra = connect_to(a);
        CHECK(read_to_end(extra.get(), 2000).empty());
    }
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1500));
    // The slow ones get 408 when their time is up; once they hang up, scrapes are served
    // again (an answered scrape holds its place until its scraper closes, or 1 s).
    for (UniqueFd& fd : slow)
        CHECK(read_to_end(fd.get()).starts_with("HTTP/1.1 408 "));
    slow.clear();
    usleep(100000);
    CHECK(scrape(a, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(WEXITSTATUS(server.stop()) == 0);
}
