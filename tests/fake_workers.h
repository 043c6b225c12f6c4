// fake_workers.h: the Dispatcher's and Supervisor's world in memory (Ninja's FakeCommandRunner
// is the model): channels that record what was sent and fail on demand, a spawner that hands
// out pids and records kills, a clock the test moves.
#pragma once

#include "dispatcher.h"
#include "log.h"
#include "supervisor.h"
#include "workers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace sniproxy::test {

struct FakeClock final : Clock {
    std::int64_t now = 1'000'000'000'000; // never 0: 0 means "no deadline"
    std::int64_t now_ns() override { return now; }
    void advance_ms(std::int64_t ms) { now += ms * 1'000'000; }
};

struct FakeChannel final : WorkerChannel {
    std::vector<std::size_t> batches; // connections per message sent
    std::vector<Msg> sent; // other messages, by type
    std::vector<Encoded> messages; // and as sent
    std::vector<std::uint32_t> ids; // of the connections sent, in order
    int fail_with = 0; // errno for the next sends (0: they succeed)
    int waits = 0; // wait_for_room calls
    int send_connections(std::span<const int> fds, std::span<const ConnectionInfo> infos) override
    {
        if (fail_with)
            return fail_with;
        batches.push_back(fds.size());
        for (const ConnectionInfo& i : infos)
            ids.push_back(i.id);
        return 0;
    }
    int send(const Encoded& m) override
    {
        if (fail_with)
            return fail_with;
        sent.push_back(m.type);
        messages.push_back(m);
        return 0;
    }
    int send_moving(const Encoded& m, std::span<const int> fds) override
    {
        if (fail_with)
            return fail_with;
        sent.push_back(m.type);
        messages.push_back(m);
        moving_fds.push_back(fds.size());
        return 0;
    }
    std::vector<std::size_t> moving_fds; // descriptors per moving message sent
    void wait_for_room() override { waits++; }
    std::size_t connections() const
    {
        std::size_t n = 0;
        for (std::size_t b : batches)
            n += b;
        return n;
    }
};

struct FakeSpawner final : Spawner {
    pid_t next_pid = 100;
    std::vector<std::pair<pid_t, unsigned>> spawned; // pid, generation
    std::vector<std::pair<pid_t, int>> kills;
    bool fail = false;
    bool spawn_worker(unsigned generation, WorkerSlot* out, std::string* err) override
    {
        if (fail) {
            *err = "fork for a worker: no";
            return false;
        }
        out->pid = next_pid++;
        out->channel = std::make_unique<FakeChannel>();
        spawned.emplace_back(out->pid, generation);
        return true;
    }
    bool spawn_upgrade(pid_t* pid, std::string*) override
    {
        *pid = next_pid++;
        return true;
    }
    void kill(pid_t pid, int sig) override { kills.emplace_back(pid, sig); }
    bool killed(pid_t pid, int sig = SIGKILL) const
    {
        for (auto& k : kills)
            if (k == std::pair { pid, sig })
                return true;
        return false;
    }
};

inline FakeChannel& channel_of(const WorkerSlot& w)
{
    return static_cast<FakeChannel&>(*w.channel);
}

// Client sockets stand-ins: real descriptors, so that closing them is observable.
inline std::vector<Pending> connections(std::size_t n)
{
    std::vector<Pending> v(n);
    for (auto& p : v)
        p.fd.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    return v;
}

inline sockaddr_storage ipv4(const char* text, std::uint16_t port = 4000)
{
    sockaddr_storage ss {};
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, text, &a->sin_addr);
    return ss;
}

// Connections from `source`, admitted by `limits` as the parent does on accept (all must be).
inline std::vector<Pending> admitted(
    SourceLimits& limits, const char* source, std::size_t n, std::int64_t now_ns)
{
    std::vector<Pending> v = connections(n);
    for (std::size_t i = 0; i < n; i++) {
        v[i].info.peer = ipv4(source);
        v[i].info.accepted_ns = now_ns + static_cast<std::int64_t>(i);
        const Admission a = limits.admit(ip_of(v[i].info.peer),
            SourceLimits::Clock::time_point(std::chrono::nanoseconds(now_ns)));
        v[i].key = a.key;
    }
    return v;
}

// Captures log lines while alive.
struct LogCapture {
    std::vector<std::pair<LogLevel, std::string>> lines;
    LogCapture()
    {
        log_set_verbosity(1);
        log_set_sink(
            [this](LogLevel l, std::string_view t) { lines.emplace_back(l, std::string(t)); });
    }
    ~LogCapture() { log_set_sink(nullptr); }
    bool has(LogLevel level, const std::string& part) const
    {
        for (auto& [l, t] : lines)
            if (l == level && t.find(part) != std::string::npos)
                return true;
        return false;
    }
};

} // namespace sniproxy::test
