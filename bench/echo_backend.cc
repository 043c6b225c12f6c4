// Echo backend for the benchmark: listens on Unix stream sockets and echoes every
// byte back (the replayed ClientHello included), with correct backpressure.
//
// usage: echo_backend [-j PROCESSES] PATH...
// Prints "ready" on stdout once every socket listens; runs until SIGTERM/SIGINT.
// -j forks processes sharing the listeners: each holds at most RLIMIT_NOFILE
// connections, and that hard limit may be low (it is 20000 in some containers).
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// One shared read buffer: data is written straight back, so only the part the peer
// would not take is copied into the connection's own `pending` buffer. That keeps an
// idle connection at a few dozen bytes, which matters at 100k connections.
constexpr std::size_t kBuf = 256 * 1024;
char g_buf[kBuf];
volatile sig_atomic_t g_stop = 0;

struct Conn {
    int fd;
    std::string pending; // echo bytes the socket did not accept yet
    std::size_t off = 0;
};

void on_signal(int) { g_stop = 1; }

int listen_unix(const char* path)
{
    sockaddr_un sa {};
    sa.sun_family = AF_UNIX;
    if (std::strlen(path) >= sizeof sa.sun_path) {
        std::fprintf(stderr, "echo_backend: path too long: %s\n", path);
        std::exit(1);
    }
    std::strcpy(sa.sun_path, path);
    unlink(path);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(fd, 65535) < 0) {
        std::fprintf(stderr, "echo_backend: %s: %s\n", path, std::strerror(errno));
        std::exit(1);
    }
    chmod(path, 0666); // proxies connect as unprivileged users (sniproxyd -u nobody)
    return fd;
}

void set_events(int ep, Conn* c, uint32_t ev)
{
    epoll_event e {};
    e.events = ev;
    e.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

void close_conn(Conn* c)
{
    close(c->fd);
    delete c;
}

// Writes the pending echo bytes; returns false when the connection failed.
bool flush(Conn* c)
{
    while (c->off < c->pending.size()) {
        const ssize_t n = send(c->fd, c->pending.data() + c->off, c->pending.size() - c->off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        c->off += static_cast<std::size_t>(n);
    }
    c->pending.clear();
    c->pending.shrink_to_fit();
    c->off = 0;
    return true;
}

// Level-triggered: read one buffer, echo it; if the peer does not take all of it,
// stop reading (EPOLLOUT only) until it drains, so memory stays bounded.
void on_event(int ep, Conn* c, uint32_t ev)
{
    if (!c->pending.empty()) {
        if (!flush(c)) {
            close_conn(c);
            return;
        }
        if (!c->pending.empty())
            return;
        set_events(ep, c, EPOLLIN | EPOLLRDHUP);
        if (!(ev & EPOLLIN))
            return;
    }
    const ssize_t n = recv(c->fd, g_buf, kBuf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_conn(c);
        return;
    }
    if (n < 0)
        return;
    ssize_t w = send(c->fd, g_buf, static_cast<std::size_t>(n), MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            close_conn(c);
            return;
        }
        w = 0;
    }
    if (w < n) {
        c->pending.assign(g_buf + w, static_cast<std::size_t>(n - w));
        set_events(ep, c, EPOLLOUT);
    }
}

} // namespace

int main(int argc, char** argv)
{
    int procs = 1, first = 1;
    if (argc > 2 && std::strcmp(argv[1], "-j") == 0) {
        procs = std::max(1, std::atoi(argv[2]));
        first = 3;
    }
    if (argc <= first) {
        std::fprintf(stderr, "usage: echo_backend [-j PROCESSES] PATH...\n");
        return 2;
    }
    rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::signal(SIGPIPE, SIG_IGN);

    std::vector<int> listeners;
    for (int i = first; i < argc; ++i)
        listeners.push_back(listen_unix(argv[i]));
    std::vector<pid_t> children;
    for (int k = 1; k < procs; ++k) {
        const pid_t pid = fork();
        if (pid == 0) {
            children.clear();
            break;
        }
        children.push_back(pid);
    }
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        const int fd = listeners[i];
        epoll_event e {};
        e.events = EPOLLIN;
        e.data.u64 = static_cast<uint64_t>(i) << 1 | 1;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    if (children.size() + 1 == static_cast<std::size_t>(procs)) { // the first process
        std::printf("ready\n");
        std::fflush(stdout);
    }

    epoll_event events[512];
    while (!g_stop) {
        const int n = epoll_wait(ep, events, 512, 500);
        for (int i = 0; i < n; ++i) {
            const uint64_t tag = events[i].data.u64;
            if (tag & 1) { // listener (Conn pointers are aligned, so bit 0 is free)
                const int lfd = listeners[tag >> 1];
                for (int k = 0; k < 256; ++k) {
                    const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int sz = 1 << 20;
                    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
                    auto* c = new Conn {fd, {}, 0};
                    epoll_event e {};
                    e.events = EPOLLIN | EPOLLRDHUP;
                    e.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            on_event(ep, static_cast<Conn*>(events[i].data.ptr), events[i].events);
        }
    }
    for (pid_t pid : children) { // the first process stops the others and cleans up
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
    }
    if (procs == 1 || !children.empty())
        for (int i = first; i < argc; ++i)
            unlink(argv[i]);
    return 0;
}
