// listeners.cc: socket(), bind(), listen() for -l, and socket adoption for service managers.
#include "listeners.h"

#include "log.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace sniproxy {

namespace {
    constexpr int backlog = 4096; // the kernel caps it at net.core.somaxconn

    bool is_listening_socket(int fd)
    {
        int accepting = 0;
        socklen_t len = sizeof accepting;
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting;
    }

    // A client that vanishes without FIN or RST (power loss, a NAT that forgot us) would
    // hold its relay and its backend connection forever: probe after 60 s of silence, every
    // 10 s, and give up after 6 unanswered probes (about two minutes). Like TCP_NODELAY,
    // Linux copies these to accepted sockets, so the worker (which may not call
    // setsockopt) needs no system call for them.
    void set_keepalive(int fd)
    {
        const int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keepalive_idle_s, sizeof keepalive_idle_s);
        setsockopt(
            fd, IPPROTO_TCP, TCP_KEEPINTVL, &keepalive_interval_s, sizeof keepalive_interval_s);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &keepalive_probes, sizeof keepalive_probes);
    }

    // TCP_NODELAY and keepalive. Accepted sockets inherit both from the listener on Linux,
    // which saves the worker a system call per connection. The hello and everything after it are
    // sent as soon as they arrive: Nagle's delay would only add latency to a relay. (Fails
    // harmlessly on a non-TCP socket handed to us.)
    void set_client_options(int fd)
    {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_keepalive(fd);
    }

    bool make_nonblocking_cloexec(int fd)
    {
        const int fl = fcntl(fd, F_GETFL);
        const bool ok = fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0
            && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
        if (ok)
            set_client_options(fd);
        return ok;
    }
} // namespace

bool bind_listeners(
    const std::vector<ListenAddress>& addresses, std::vector<UniqueFd>* out, std::string* err)
{
    for (const ListenAddress& a : addresses) {
        const std::string where = format_address(a.addr);
        UniqueFd fd(socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd)
            return set_error(err, errno_message("socket for " + where, errno));
        const int one = 1;
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        set_client_options(fd.get());
        if (a.addr.ss_family == AF_INET6
            && setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
            return set_error(err, errno_message("IPV6_V6ONLY on " + where, errno));
        if (!bind_and_listen(fd.get(), a.addr, a.len, where, backlog, err))
            return false;
        out->push_back(std::move(fd));
    }
    return true;
}

bool bind_and_listen(int fd, const sockaddr_storage& addr, socklen_t len, const std::string& where,
    int backlog, std::string* err)
{
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
        const int e = errno;
        return set_error(err,
            errno_message("cannot listen on " + where, e)
                + (e == EACCES ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : ""));
    }
    if (listen(fd, backlog) != 0)
        return set_error(err, errno_message("listen on " + where, errno));
    return true;
}

bool adopt_listeners(std::vector<UniqueFd>* out, std::string* how, std::string* err)
{
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    if (pid && fds && std::strtol(pid, nullptr, 10) == getpid()) {
        const long n = std::strtol(fds, nullptr, 10);
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        for (long i = 0; i < n && i < 64; i++) {
            const int fd = 3 + static_cast<int>(i);
            if (!is_listening_socket(fd) || !make_nonblocking_cloexec(fd)) {
                return set_error(err,
                    "LISTEN_FDS: descriptor " + std::to_string(fd) + " is not a listening socket");
            }
            out->emplace_back(fd);
        }
        *how = "systemd (LISTEN_FDS=" + std::to_string(n) + ")";
        return n > 0;
    }
    if (is_listening_socket(0)) {
        const int fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
        if (fd < 0 || !make_nonblocking_cloexec(fd))
            return set_error(err, errno_message("adopting the socket on stdin", errno));
        out->emplace_back(fd);
        *how = "the socket on standard input";
        return true;
    }
    return false;
}

void defer_accept(const std::vector<UniqueFd>& listeners, int seconds)
{
    for (const UniqueFd& l : listeners) // fails harmlessly on a non-TCP socket handed to us
        setsockopt(l.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof seconds);
}

bool accept_queue_length(int listener, std::size_t* queued, std::string* err)
{
    tcp_info info {};
    socklen_t len = sizeof info;
    if (getsockopt(listener, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return set_error(err, errno_message("TCP_INFO", errno));
    if (len < offsetof(tcp_info, tcpi_unacked) + sizeof info.tcpi_unacked
        || info.tcpi_state != TCP_LISTEN)
        return set_error(err, "TCP_INFO: not a TCP listener");
    *queued = info.tcpi_unacked;
    return true;
}

void detach_stdio_sockets()
{
    const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return;
    for (int fd = 0; fd <= 2; fd++) {
        if (is_listening_socket(fd))
            dup2(null, fd);
    }
    if (null > 2)
        close(null);
}

} // namespace sniproxy
