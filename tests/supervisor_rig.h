// supervisor_rig.h: a Supervisor and a Dispatcher over fake workers (fake_workers.h), with
// helpers to speak as a worker: shared by supervisor_test.cc and supervisor_move_test.cc.
#pragma once

#include "catch.h"
#include "fake_workers.h"
#include "loopback.h"
#include "supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>

namespace sniproxy::test {

constexpr int exited_1 = 1 << 8; // wait status: exit(1)
constexpr int killed_9 = SIGKILL; // wait status: killed by SIGKILL

template <typename T> T with_ids(std::initializer_list<std::uint32_t> ids)
{
    T m;
    for (std::uint32_t id : ids)
        m.ids[m.count++] = id;
    return m;
}

struct Rig {
    FakeClock clock;
    FakeSpawner spawner;
    WorkerList workers;
    Dispatcher d { workers, 4, clock };
    Supervisor s;
    explicit Rig(int count = 2, int grace = 10)
        : s(workers, d, spawner, clock, { count, grace, 0 })
    {
        std::string err;
        REQUIRE(s.start(&err));
    }
    static Received message(Msg type, std::span<const std::uint8_t> payload = {})
    {
        Received m;
        m.type = type;
        std::memcpy(m.payload, payload.data(), payload.size());
        m.payload_len = payload.size();
        return m;
    }
    bool say(WorkerSlot& w, const Encoded& e)
    {
        Received m = message(e.type, e.bytes());
        return s.on_message(w, m);
    }
    void all_ready()
    {
        for (auto& w : workers)
            if (!w->ready && !w->draining)
                REQUIRE(say(*w, encode(ReadyMsg {})));
    }
    std::vector<WorkerSlot*> of_generation(unsigned g)
    {
        std::vector<WorkerSlot*> v;
        for (auto& w : workers)
            if (w->generation == g)
                v.push_back(w.get());
        return v;
    }
};

struct Counted : Rig {
    Settings settings;
    SourceLimits limits;
    explicit Counted(unsigned source_max)
        : Rig(1)
        , settings(with_max(source_max))
        , limits(settings, { 1, 2 })
    {
        d.set_limits(&limits);
        all_ready();
    }
    static Settings with_max(unsigned n)
    {
        Settings s;
        s.source_max = n;
        return s;
    }
    SourceLimits::Counts counts(const char* source)
    {
        return limits.counts(limits.key_of(ip_of(ipv4(source))));
    }
};

// Real descriptors of each kind a moving message may carry: the parent checks them.
struct MoveFds {
    UniqueFd listener, tcp, unix_a, unix_b, pipe_r, pipe_w;
    MoveFds()
    {
        sockaddr_in a;
        listener = loopback_listener(&a);
        tcp.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(connect(tcp.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        unix_a.reset(sv[0]);
        unix_b.reset(sv[1]);
        REQUIRE(pipe2(sv, O_CLOEXEC) == 0);
        pipe_r.reset(sv[0]);
        pipe_w.reset(sv[1]);
    }
};

// A moving message for `id` from `w` with dup()s of `fds`; whether the parent accepted it.
inline bool hand_over_moving(Rig& r, WorkerSlot& w, std::uint32_t id,
    std::initializer_list<int> fds, std::uint32_t in_pipe = 0)
{
    MovingMsg m;
    m.id = id;
    m.up.splicing = in_pipe > 0;
    m.up.in_pipe = in_pipe;
    Encoded e;
    std::string err;
    REQUIRE(encode_moving(m, &e, &err));
    Received rec = Rig::message(e.type, e.bytes());
    for (int fd : fds)
        rec.fds[rec.nfds++].reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
    return r.s.on_message(w, rec);
}

// The rig's one worker holding `n` connections, those in `routed` past their hello.
inline WorkerSlot& holding(Rig& r, std::size_t n, std::initializer_list<std::uint32_t> routed)
{
    r.all_ready();
    WorkerSlot& w = *r.workers[0];
    auto batch = connections(n);
    REQUIRE(r.d.hand_over(batch));
    REQUIRE(r.say(w, encode(with_ids<HelloDoneMsg>(routed))));
    return w;
}

// The upgrade channel between two parents: records what was sent, fails on demand.
struct FakeUpgradeLink final : UpgradeLink {
    std::vector<Encoded> sent;
    std::vector<std::size_t> fds;
    int fail_with = 0;
    int send_moving(const Encoded& m, std::span<const int> f) override
    {
        if (fail_with)
            return fail_with;
        sent.push_back(m);
        fds.push_back(f.size());
        return 0;
    }
    int waits = 0;
    void wait_for_room() override { waits++; }
};

// A moving message for `id` as the old parent (or a worker) sends it, from `source`, with
// dup()s of `fds`.
inline Received moving(std::uint32_t id, std::initializer_list<int> fds,
    const char* source = nullptr, std::uint32_t in_pipe = 0, Encoded* as = nullptr,
    const char* peer = nullptr)
{
    MovingMsg m;
    m.id = id;
    m.up.splicing = in_pipe > 0;
    m.up.in_pipe = in_pipe;
    m.accepted_ns = 12345;
    m.sni = "example.com";
    if (source)
        m.source = ipv4(source);
    if (peer)
        m.peer = ipv4(peer);
    Encoded e;
    std::string err;
    REQUIRE(encode_moving(m, &e, &err));
    if (as)
        *as = e;
    Received rec = Rig::message(e.type, e.bytes());
    for (int fd : fds)
        rec.fds[rec.nfds++].reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
    return rec;
}

} // namespace sniproxy::test
