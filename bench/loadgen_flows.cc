// Event-driven modes of bench/loadgen (rate, open, bulk, idle): one epoll loop,
// level-triggered, each connection a small state machine.
#include "loadgen.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

constexpr uint64_t kSec = 1000000000u;
constexpr uint64_t kConnTimeout = 10 * kSec;      // a connection stuck longer is an error
constexpr std::size_t kBulkWindow = 4u << 20;     // bulk: bytes in flight per stream

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Flow {
    int fd = -1;
    uint64_t idx = 0;
    uint64_t t0 = 0;
    std::size_t sent = 0, recvd = 0;
    uint32_t events = 0;
    bool connected = false, holding = false;
    std::size_t slot = 0; // index in Engine::active, for O(1) removal
};

struct Engine {
    const Options& o;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<std::vector<uint8_t>> msgs; // per SNI: hello + payload, what we expect back
    std::vector<Flow*> active;
    std::vector<uint8_t> chunk;             // bulk payload
    static inline uint8_t rbuf[256 * 1024];
    uint64_t next_idx = 0, completed = 0, started = 0, skipped = 0, held = 0, dropped = 0;
    uint64_t err_connect = 0, err_io = 0, err_verify = 0, err_timeout = 0;
    uint64_t bulk_bytes = 0;
    std::string first_error;
    std::vector<uint32_t> lat_us;
    bool counting = true;

    explicit Engine(const Options& opt) : o(opt)
    {
        const bool with_payload = o.mode == "rate" || o.mode == "open";
        for (const auto& h : g_hellos) {
            msgs.push_back(h);
            if (with_payload)
                for (std::size_t k = 0; k < o.payload; ++k)
                    msgs.back().push_back(static_cast<uint8_t>(k * 31 + 7));
        }
        if (o.mode == "bulk")
            for (std::size_t k = 0; k < o.bulk_chunk; ++k)
                chunk.push_back(static_cast<uint8_t>(k));
    }

    void note(uint64_t& counter, const char* what)
    {
        if (counting)
            ++counter;
        if (first_error.empty())
            first_error = std::string(what) + ":" + (errno ? std::strerror(errno) : "none");
    }

    void want(Flow* f, uint32_t ev)
    {
        if (f->events == ev)
            return;
        epoll_event e {};
        e.events = ev;
        e.data.ptr = f;
        epoll_ctl(ep, EPOLL_CTL_MOD, f->fd, &e);
        f->events = ev;
    }

    bool start()
    {
        const uint64_t idx = next_idx++;
        const int fd = start_connect(o, idx);
        if (fd < 0) {
            note(err_connect, "connect");
            return false;
        }
        auto* f = new Flow;
        f->fd = fd;
        f->idx = idx;
        f->t0 = now_ns();
        f->events = EPOLLOUT;
        f->slot = active.size();
        active.push_back(f);
        epoll_event e {};
        e.events = EPOLLOUT;
        e.data.ptr = f;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        ++started;
        return true;
    }

    void finish(Flow* f)
    {
        close(f->fd);
        active[f->slot] = active.back();
        active[f->slot]->slot = f->slot;
        active.pop_back();
        delete f;
    }

    const std::vector<uint8_t>& msg(const Flow* f) const { return msgs[f->idx % msgs.size()]; }

    // Sends what is due; rate/open/idle send one message, bulk the hello then chunks.
    bool on_writable(Flow* f)
    {
        if (!f->connected) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                errno = err;
                note(err_connect, "connect");
                return false;
            }
            f->connected = true;
            // Read while writing: the echo may come back before the last byte goes out.
            want(f, EPOLLIN | EPOLLOUT);
        }
        const auto& m = msg(f);
        while (f->sent < m.size()) {
            const ssize_t n = send(f->fd, m.data() + f->sent, m.size() - f->sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN)
                    return true;
                note(err_io, "send");
                return false;
            }
            f->sent += static_cast<std::size_t>(n);
        }
        if (o.mode != "bulk") {
            want(f, EPOLLIN);
            return true;
        }
        while (f->sent - f->recvd < kBulkWindow) {
            const ssize_t n = send(f->fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN)
                    return true;
                note(err_io, "send");
                return false;
            }
            f->sent += static_cast<std::size_t>(n);
        }
        want(f, EPOLLIN);
        return true;
    }

    // Returns false when the flow is over (completed or failed).
    bool on_readable(Flow* f)
    {
        const auto& m = msg(f);
        const ssize_t n = recv(f->fd, rbuf, sizeof rbuf, 0);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return true;
            if (f->holding) {
                ++dropped;
                return false;
            }
            note(err_io, n == 0 ? "eof" : "recv");
            return false;
        }
        const auto got = static_cast<std::size_t>(n);
        if (o.mode == "bulk") {
            // The echoed hello is checked; the payload is only counted.
            const std::size_t h = std::min(got, f->recvd < m.size() ? m.size() - f->recvd : 0);
            if (h && std::memcmp(rbuf, m.data() + f->recvd, h) != 0) {
                note(err_verify, "verify");
                return false;
            }
            if (counting)
                bulk_bytes += got - h;
            f->recvd += got;
            if (f->sent - f->recvd < kBulkWindow)
                want(f, EPOLLIN | EPOLLOUT);
            return true;
        }
        if (f->recvd + got > m.size() || std::memcmp(rbuf, m.data() + f->recvd, got) != 0) {
            errno = 0;
            note(err_verify, "verify");
            return false;
        }
        f->recvd += got;
        if (f->recvd < m.size())
            return true;
        if (o.mode == "idle") {
            f->holding = true;
            ++held;
            return true;
        }
        if (counting) {
            ++completed;
            lat_us.push_back(static_cast<uint32_t>((now_ns() - f->t0) / 1000));
        }
        return false;
    }

    void dispatch(epoll_event& e)
    {
        auto* f = static_cast<Flow*>(e.data.ptr);
        bool ok = true;
        if (e.events & (EPOLLOUT | EPOLLERR | EPOLLHUP) && !f->holding && (f->events & EPOLLOUT))
            ok = on_writable(f);
        if (ok && (e.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && f->connected)
            ok = on_readable(f);
        if (!ok)
            finish(f);
    }

    void expire(uint64_t now)
    {
        for (std::size_t i = 0; i < active.size();) {
            Flow* f = active[i];
            if (!f->holding && o.mode != "bulk" && now > f->t0 + kConnTimeout) {
                errno = ETIMEDOUT;
                note(err_timeout, "timeout");
                finish(f); // moves the last flow into slot i
            } else {
                ++i;
            }
        }
    }

    int poll_once(int64_t timeout_ns)
    {
        epoll_event evs[512];
        const timespec ts {static_cast<time_t>(timeout_ns / 1000000000), static_cast<long>(timeout_ns % 1000000000)};
        const int n = epoll_pwait2(ep, evs, 512, &ts, nullptr);
        for (int i = 0; i < n; ++i)
            dispatch(evs[i]);
        return n;
    }

    uint64_t errors() const { return err_connect + err_io + err_verify + err_timeout; }
};

// Idle mode, once every connection is established: hold them until stdin closes or
// a signal arrives, then report how many the proxy dropped meanwhile.
void hold(Engine& g)
{
    epoll_event e {};
    e.events = EPOLLIN;
    e.data.ptr = nullptr;
    // A pipe or terminal on stdin is watched for EOF; a file (or /dev/null) cannot be
    // polled, so then only a signal ends the hold.
    epoll_ctl(g.ep, EPOLL_CTL_ADD, 0, &e);
    while (!g_stop) {
        epoll_event evs[512];
        const int n = epoll_wait(g.ep, evs, 512, 1000);
        for (int i = 0; i < n; ++i) {
            if (evs[i].data.ptr == nullptr) {
                char b[256];
                if (read(0, b, sizeof b) <= 0)
                    g_stop = 1;
                continue;
            }
            g.dispatch(evs[i]);
        }
    }
    std::printf("mode=idle final held=%zu dropped=%llu\n", g.active.size(),
        static_cast<unsigned long long>(g.dropped));
}

} // namespace

int run_flows(const Options& o)
{
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    Engine g(o);
    const uint64_t t_begin = now_ns();
    const uint64_t t_end = t_begin + static_cast<uint64_t>(o.duration * 1e9);
    uint64_t last_expire = t_begin;
    uint64_t next_due = t_begin;
    const uint64_t interval = o.rate > 0 ? static_cast<uint64_t>(1e9 / o.rate) : kSec;
    // Connections being established at once, for the modes without -c semantics.
    const std::size_t open_cap = 20000, idle_cap = static_cast<std::size_t>(o.concurrency);
    uint64_t now = t_begin;
    while (!g_stop) {
        now = now_ns();
        int64_t timeout = 1000000; // ns
        if (o.mode == "rate" || o.mode == "bulk") {
            if (now >= t_end)
                break;
            const std::size_t deficit = static_cast<std::size_t>(o.concurrency) - std::min(g.active.size(), static_cast<std::size_t>(o.concurrency));
            for (std::size_t k = 0; k < deficit && (o.mode == "rate" || g.next_idx < static_cast<uint64_t>(o.concurrency)); ++k)
                g.start();
            timeout = static_cast<int64_t>(std::min<uint64_t>(100000000, t_end - now));
        } else if (o.mode == "open") {
            while (now < t_end && next_due <= now) {
                if (g.active.size() < open_cap)
                    g.start();
                else
                    ++g.skipped;
                next_due += interval;
            }
            if (now >= t_end && (g.active.empty() || now > t_end + 5 * kSec))
                break;
            // Sleep exactly until the next start is due: spinning would steal CPU 1
            // from the echo backend.
            timeout = now < t_end ? static_cast<int64_t>(next_due - std::min(next_due, now)) : 100000000;
        } else { // idle: -c connections being established at once, up to -n in all
            while (g.next_idx < static_cast<uint64_t>(o.count) && g.active.size() - g.held < idle_cap)
                g.start();
            if (g.next_idx >= static_cast<uint64_t>(o.count) && g.active.size() == g.held)
                break;
            timeout = 100 * 1000000;
        }
        g.poll_once(timeout);
        if (now - last_expire > 200000000u) {
            g.expire(now);
            last_expire = now;
        }
    }
    const double secs = static_cast<double>(now - t_begin) / 1e9;
    g.counting = false;
    if (o.mode == "idle") {
        std::printf("mode=idle ready established=%llu errors=%llu secs=%.2f error=%s\n",
            static_cast<unsigned long long>(g.held), static_cast<unsigned long long>(g.errors()), secs,
            g.first_error.empty() ? "-" : g.first_error.c_str());
        std::fflush(stdout);
        hold(g);
        return 0;
    }
    const double d = o.mode == "open" ? o.duration : secs;
    std::printf("mode=%s conns=%llu secs=%.3f rate=%.1f errors=%llu err_connect=%llu err_io=%llu "
                "err_verify=%llu err_timeout=%llu skipped=%llu",
        o.mode.c_str(), static_cast<unsigned long long>(g.completed), d,
        static_cast<double>(g.completed) / d, static_cast<unsigned long long>(g.errors()),
        static_cast<unsigned long long>(g.err_connect), static_cast<unsigned long long>(g.err_io),
        static_cast<unsigned long long>(g.err_verify), static_cast<unsigned long long>(g.err_timeout),
        static_cast<unsigned long long>(g.skipped));
    if (o.mode == "bulk")
        std::printf(" bytes=%llu mb_per_s=%.1f", static_cast<unsigned long long>(g.bulk_bytes),
            static_cast<double>(g.bulk_bytes) / d / 1e6);
    else
        print_percentiles(g.lat_us);
    std::printf(" error=%s\n", g.first_error.empty() ? "-" : g.first_error.c_str());
    return 0;
}
