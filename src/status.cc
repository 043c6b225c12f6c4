// status.cc: the `status` command of sniproxyctl: one HTTP/1.0 request to the metrics
// endpoint (Prometheus text, which is all it needs), then parse, summarize and print.
#include "status.h"

#include "fd.h"
#include "log.h"
#include "metrics_text.h"
#include "status_report.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace sniproxy {

namespace {

    constexpr std::size_t max_answer = 64u << 20;
    constexpr int exit_usage = 2;

    using Clock = std::chrono::steady_clock;

    int left_ms(Clock::time_point deadline)
    {
        const auto ms
            = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
                  .count();
        return ms > 0 ? static_cast<int>(ms) : 0;
    }

    // Waits for `events` on fd until the deadline; false on timeout.
    bool wait_for(int fd, short events, Clock::time_point deadline)
    {
        pollfd p { fd, events, 0 };
        int rc;
        while ((rc = poll(&p, 1, left_ms(deadline))) < 0 && errno == EINTR) { }
        return rc > 0;
    }

    bool connect_within(
        int fd, const sockaddr* sa, socklen_t len, Clock::time_point deadline, std::string* err)
    {
        if (connect(fd, sa, len) == 0)
            return true;
        if (errno != EINPROGRESS) {
            *err = errno_message("connect", errno);
            return false;
        }
        if (!wait_for(fd, POLLOUT, deadline)) {
            *err = "connect: timed out";
            return false;
        }
        int so_error = 0;
        socklen_t l = sizeof so_error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &l);
        if (so_error != 0) {
            *err = errno_message("connect", so_error);
            return false;
        }
        return true;
    }

    UniqueFd open_target(std::string_view target, Clock::time_point deadline, std::string* err)
    {
        if (target.starts_with("unix:")) {
            const std::string_view path = target.substr(5);
            sockaddr_un sun {};
            sun.sun_family = AF_UNIX;
            if (path.empty() || path.size() >= sizeof sun.sun_path) {
                *err = "the socket path is empty or too long";
                return {};
            }
            path.copy(sun.sun_path, path.size());
            UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
            if (!fd
                || !connect_within(
                    fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun, deadline, err))
                return {};
            return fd;
        }
        const std::size_t colon = target.rfind(':');
        if (colon == std::string_view::npos || colon + 1 == target.size()) {
            *err = "expected ADDRESS:PORT or unix:PATH";
            return {};
        }
        std::string host(target.substr(0, colon));
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
            host = host.substr(1, host.size() - 2);
        const std::string port(target.substr(colon + 1));
        addrinfo hints {};
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* list = nullptr;
        if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list); rc != 0) {
            *err = std::string(host) + " port " + port + ": " + gai_strerror(rc);
            return {};
        }
        UniqueFd result;
        for (const addrinfo* a = list; a && !result; a = a->ai_next) {
            UniqueFd fd(socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
            if (fd && connect_within(fd.get(), a->ai_addr, a->ai_addrlen, deadline, err))
                result = std::move(fd);
        }
        freeaddrinfo(list);
        return result;
    }

} // namespace

bool fetch_metrics(std::string_view target, int timeout_ms, std::string* body, std::string* err)
{
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    UniqueFd fd = open_target(target, deadline, err);
    if (!fd)
        return false;
    const std::string_view request
        = "GET /metrics HTTP/1.0\r\nAccept: text/plain;version=0.0.4\r\n\r\n";
    for (std::size_t sent = 0; sent < request.size();) {
        const ssize_t n
            = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN && wait_for(fd.get(), POLLOUT, deadline))
            continue;
        if (n <= 0) {
            *err = n < 0 && errno != EAGAIN ? errno_message("send", errno) : "send: timed out";
            return false;
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string answer;
    for (;;) {
        char buf[65536];
        const ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
        if (n == 0)
            break;
        if (n < 0 && errno == EAGAIN) {
            if (!wait_for(fd.get(), POLLIN, deadline)) {
                *err = "no complete answer within " + std::to_string(timeout_ms) + " ms";
                return false;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno_message("recv", errno);
            return false;
        }
        answer.append(buf, static_cast<std::size_t>(n));
        if (answer.size() > max_answer) {
            *err = "the answer is larger than 64 MiB";
            return false;
        }
    }
    const std::size_t head_end = answer.find("\r\n\r\n");
    const std::string status_line = answer.substr(0, answer.find("\r\n"));
    if (head_end == std::string::npos || !status_line.starts_with("HTTP/1.")) {
        *err = "the answer is not HTTP";
        return false;
    }
    if (status_line.size() < 12 || status_line.compare(8, 4, " 200") != 0) {
        *err = "the server answered " + sanitize_log_text(status_line, 80);
        return false;
    }
    *body = answer.substr(head_end + 4);
    return true;
}

int cmd_status(int argc, char* argv[])
{
    bool json = false;
    const char* target = nullptr;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--json" || a == "-j")
            json = true;
        else if (!target && !a.starts_with("-"))
            target = argv[i];
        else {
            std::fprintf(stderr, "usage: sniproxyctl status [--json] ADDRESS:PORT|unix:PATH\n");
            return exit_usage;
        }
    }
    if (!target) {
        std::fprintf(stderr, "usage: sniproxyctl status [--json] ADDRESS:PORT|unix:PATH\n");
        return exit_usage;
    }
    std::string body, err;
    std::vector<MetricSample> samples;
    if (!fetch_metrics(target, 10000, &body, &err) || !parse_metrics_text(body, &samples, &err)) {
        std::fprintf(stderr, "sniproxyctl: status %s: %s\n", sanitize_log_text(target, 200).c_str(),
            err.c_str());
        return 1;
    }
    const StatusReport report = summarize_metrics(samples);
    timespec now {};
    clock_gettime(CLOCK_REALTIME, &now);
    const double t = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
    const std::string out = json ? format_status_json(report, t) : format_status_text(report, t);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

} // namespace sniproxy
