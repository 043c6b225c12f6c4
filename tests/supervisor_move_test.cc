// supervisor_move_test.cc: the upgrade channel through the fakes. The new parent treats the
// old parent's moving messages as untrusted (the same decoder and descriptor checks, a
// violation closes the channel and nothing else), gives each a fresh id in its own id space,
// counts it for its source and hands it to its least-loaded worker, or sends it back when
// none has room; the old parent forwards its draining workers' connections over it and
// gives what comes back to the worker it came from.
#include "catch.h"
#include "fake_workers.h"
#include "supervisor.h"
#include "supervisor_rig.h"

#include <cstring>
#include <variant>

using namespace sniproxy;
using namespace sniproxy::test;

namespace {
// A new parent of an upgrade with one ready worker and its channel from the old parent.
struct NewParent : Rig {
    FakeUpgradeLink link;
    NewParent()
        : Rig(1)
    {
        all_ready();
        s.set_upgrade_link(&link, false);
    }
};

// The old parent of an upgrade, stopping, its one worker holding connection 1 (routed), its
// channel to the new parent failing sends with `fail_with` (0: none).
struct OldParent : Rig {
    FakeUpgradeLink link;
    WorkerSlot* old = nullptr;
    explicit OldParent(int fail_with)
        : Rig(1)
    {
        old = &holding(*this, 1, { 1 });
        link.fail_with = fail_with;
        s.set_upgrade_link(&link, true);
        s.stop(false);
    }
};

MovingMsg decoded(const Encoded& e)
{
    Received rec = Rig::message(e.type, e.bytes());
    rec.fds[rec.nfds++].reset(open("/dev/null", O_RDONLY | O_CLOEXEC)); // the count is all
    rec.fds[rec.nfds++].reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    FromWorker out;
    std::string err;
    REQUIRE(decode_from_worker(rec, &out, &err));
    return std::get<MovingMsg>(out);
}
} // namespace

TEST_CASE("the new parent takes a connection over under a fresh id, counted for its source")
{
    Counted r(10);
    FakeUpgradeLink link;
    r.s.set_upgrade_link(&link, false);
    WorkerSlot& w = *r.workers[0];
    auto batch = connections(1); // id 1 is taken in this parent already
    REQUIRE(r.d.hand_over(batch));
    MoveFds f;
    Received m = moving(1, { f.tcp.get(), f.unix_a.get() }, "198.51.100.7");
    REQUIRE(r.s.on_upgrade_message(m));
    REQUIRE(channel_of(w).moving_fds == std::vector<std::size_t> { 2 });
    const MovingMsg got = decoded(channel_of(w).messages.back());
    CHECK(got.id != 1);
    CHECK(got.sni == "example.com");
    CHECK(got.accepted_ns == 12345);
    REQUIRE(w.held.contains(got.id));
    CHECK_FALSE(w.held.at(got.id).in_hello);
    CHECK(w.inflight == 2);
    CHECK(r.counts("198.51.100.7").connections == 1);
    CHECK(r.counts("198.51.100.7").hellos == 0);
    CHECK(r.s.moved_from_upgrade() == 1);
    CHECK(link.sent.empty());
    // It is the worker's like any other: closed, it is released.
    CHECK(r.say(w, encode(with_ids<ClosedMsg>({ got.id }))));
    CHECK(r.counts("198.51.100.7").connections == 0);
}

TEST_CASE("with no room in the new parent the connection goes back over the channel")
{
    NewParent r;
    FakeUpgradeLink& link = r.link;
    WorkerSlot& w = *r.workers[0];
    auto full = connections(4); // -c 4 in the rig
    REQUIRE(r.d.hand_over(full));
    MoveFds f;
    Encoded e;
    Received m = moving(7, { f.tcp.get(), f.unix_a.get(), f.pipe_r.get() }, nullptr, 3, &e);
    REQUIRE(r.s.on_upgrade_message(m));
    REQUIRE(link.sent.size() == 1);
    CHECK(link.sent[0].payload == e.payload); // byte for byte, under the old parent's id
    CHECK(link.fds == std::vector<std::size_t> { 3 });
    CHECK(channel_of(w).moving_fds.empty());
    CHECK(w.inflight == 4);
    CHECK(r.s.upgrade_refused() == 1);
    CHECK(r.s.upgrade_link_open());
}

TEST_CASE("a bad message from the old parent closes the channel, and only that")
{
    NewParent r;
    MoveFds f;
    LogCapture log;
    Received m;
    SECTION("a pipe where the client belongs")
    {
        m = moving(1, { f.pipe_r.get(), f.unix_a.get() });
        CHECK(r.s.on_upgrade_message(m) == false);
        CHECK(log.has(LogLevel::err, "the client is not a socket"));
    }
    SECTION("too few descriptors")
    {
        m = moving(1, { f.tcp.get() });
        CHECK(r.s.on_upgrade_message(m) == false);
    }
    SECTION("a message that is not a moving one")
    {
        const Encoded e = encode(ReadyMsg {});
        m = Rig::message(e.type, e.bytes());
        CHECK(r.s.on_upgrade_message(m) == false);
        CHECK(log.has(LogLevel::err, "is not a moving message"));
    }
    SECTION("a size that disagrees with its lengths")
    {
        m = moving(1, { f.tcp.get(), f.unix_a.get() });
        m.payload_len--;
        CHECK(r.s.on_upgrade_message(m) == false);
    }
    CHECK(log.has(LogLevel::err, "upgrade channel: protocol violation"));
    CHECK_FALSE(r.s.upgrade_link_open());
    CHECK(channel_of(*r.workers[0]).moving_fds.empty());
    // Still serving; the closed channel takes nothing more.
    auto batch = connections(1);
    CHECK(r.d.hand_over(batch));
    Received late = moving(2, { f.tcp.get(), f.unix_a.get() });
    CHECK(r.s.on_upgrade_message(late) == false);
    CHECK(channel_of(*r.workers[0]).moving_fds.empty());
}

TEST_CASE("the stopping old parent forwards to the new one and takes back what had no room")
{
    Rig r(1);
    WorkerSlot& old = holding(r, 2, { 1, 2 });
    FakeUpgradeLink link;
    r.s.set_upgrade_link(&link, true);
    r.s.stop(false); // the new parent's SIGTERM
    REQUIRE(channel_of(old).messages.size() == 1);
    CHECK(channel_of(old).messages[0].type == Msg::drain);
    CHECK(channel_of(old).messages[0].payload.back() == 1); // move
    MoveFds f;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    REQUIRE(hand_over_moving(r, old, 2, { f.tcp.get(), f.unix_a.get() }));
    REQUIRE(link.sent.size() == 2);
    CHECK(old.inflight == 0);
    CHECK(old.moved_out == 2);
    // The new parent had no room for 2: it comes back, and back to its worker.
    Received back = Rig::message(link.sent[1].type, link.sent[1].bytes());
    back.fds[back.nfds++].reset(fcntl(f.tcp.get(), F_DUPFD_CLOEXEC, 0));
    back.fds[back.nfds++].reset(fcntl(f.unix_a.get(), F_DUPFD_CLOEXEC, 0));
    REQUIRE(r.s.on_upgrade_message(back));
    CHECK(channel_of(old).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(old.held.contains(2));
    CHECK(old.inflight == 1);
    CHECK(old.moves_refused == 1);
    // It cannot come back twice, nor can one never sent.
    Received again = Rig::message(link.sent[1].type, link.sent[1].bytes());
    again.fds[again.nfds++].reset(fcntl(f.tcp.get(), F_DUPFD_CLOEXEC, 0));
    again.fds[again.nfds++].reset(fcntl(f.unix_a.get(), F_DUPFD_CLOEXEC, 0));
    LogCapture log;
    CHECK_FALSE(r.s.on_upgrade_message(again));
    CHECK(log.has(LogLevel::err, "which it was not sent"));
    // The worker reports the one it kept closed, exits: the old parent is finished.
    CHECK(r.say(old, encode(with_ids<ClosedMsg>({ 2 }))));
    r.s.child_exited(old.pid, 0);
    CHECK(r.s.finished());
}

TEST_CASE("an old parent whose upgrade channel fails keeps the connection with its worker")
{
    OldParent r(EPIPE);
    WorkerSlot& old = *r.old;
    MoveFds f;
    LogCapture log;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    CHECK(log.has(LogLevel::err, "upgrade channel: sending a connection"));
    CHECK(channel_of(old).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(old.held.contains(1));
    CHECK(old.moves_refused == 1);
    CHECK_FALSE(r.s.upgrade_link_open());
}

TEST_CASE("a full upgrade channel queues the connection; the old parent waits to send it")
{
    OldParent r(EAGAIN);
    WorkerSlot& old = *r.old;
    FakeUpgradeLink& link = r.link;
    MoveFds f;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    CHECK(link.waits == 1);
    CHECK(link.sent.empty());
    CHECK(old.inflight == 0); // the parent holds it now, not the worker
    CHECK(channel_of(old).moving_fds.empty());
    r.s.child_exited(old.pid, 0); // the worker may go: its connection waits here
    CHECK_FALSE(r.s.finished());
    r.s.retry_moves(); // still full
    CHECK(link.waits == 2);
    link.fail_with = 0;
    r.s.retry_moves();
    REQUIRE(link.fds == std::vector<std::size_t> { 2 });
    CHECK(decoded(link.sent[0]).id == 1);
    CHECK(r.s.finished());
}

TEST_CASE("a new worker's full channel queues a connection from the old parent until room")
{
    NewParent r;
    FakeUpgradeLink& link = r.link;
    WorkerSlot& w = *r.workers[0];
    channel_of(w).fail_with = EAGAIN;
    MoveFds f;
    Received m = moving(5, { f.tcp.get(), f.unix_a.get() });
    REQUIRE(r.s.on_upgrade_message(m));
    CHECK(channel_of(w).waits == 1);
    CHECK(link.sent.empty()); // not given back: the worker has room, only not right now
    CHECK(w.inflight == 0);
    channel_of(w).fail_with = 0;
    r.d.on_room(w);
    r.s.retry_moves();
    REQUIRE(channel_of(w).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(w.inflight == 1);
    CHECK(r.s.moved_from_upgrade() == 1);
}

TEST_CASE("what a silent new parent never reads is given up at the grace's backstop")
{
    OldParent r(EAGAIN); // -g 10
    WorkerSlot& old = *r.old;
    MoveFds f;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    CHECK(r.s.next_backstop_ns() == r.clock.now + 12'000'000'000);
    LogCapture log;
    r.clock.advance_ms(12'000);
    r.s.tick();
    CHECK(log.has(LogLevel::err, "1 connection(s) still unsent after the grace"));
    CHECK_FALSE(r.s.upgrade_link_open());
    CHECK(old.held.contains(1)); // back with its worker, which the backstop kills too
    r.s.child_exited(old.pid, killed_9);
    CHECK(r.s.finished());
}

TEST_CASE("on a rollover a full new channel queues the connection instead of giving it back")
{
    Rig r(1);
    WorkerSlot& old = holding(r, 2, { 1, 2 });
    r.s.rollover();
    r.all_ready();
    WorkerSlot& fresh = *r.of_generation(2).at(0);
    channel_of(fresh).fail_with = EAGAIN;
    MoveFds f;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    REQUIRE(hand_over_moving(r, old, 2, { f.tcp.get(), f.unix_a.get() }));
    CHECK(channel_of(old).moving_fds.empty()); // not given back
    CHECK(old.moves_refused == 0);
    CHECK(channel_of(fresh).waits == 1);
    // The old worker ends before there is room: its records go with it, the connections not.
    r.s.child_exited(old.pid, 0);
    channel_of(fresh).fail_with = 0;
    r.d.on_room(fresh);
    r.s.retry_moves();
    REQUIRE(channel_of(fresh).moving_fds == std::vector<std::size_t> { 2, 2 });
    CHECK(fresh.inflight == 2);
    CHECK(fresh.moved_in == 2);
    for (const Encoded& e : channel_of(fresh).messages)
        if (e.type == Msg::moving)
            CHECK(fresh.held.contains(decoded(e).id));
}

TEST_CASE("a rollover's queued connection goes back to its old worker when the daemon stops")
{
    Rig r(1);
    WorkerSlot& old = holding(r, 1, { 1 });
    r.s.rollover();
    r.all_ready();
    channel_of(*r.of_generation(2).at(0)).fail_with = EAGAIN;
    MoveFds f;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    CHECK(channel_of(old).moving_fds.empty());
    r.s.stop(false);
    CHECK(channel_of(old).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(old.held.contains(1));
    CHECK(old.moves_refused == 1);
}

TEST_CASE("a taken-over connection is counted without a rate token and even over source-max")
{
    Counted r(1); // source-max 1
    Settings limited = Counted::with_max(1);
    limited.source_rate = { 1, 1 }; // one new connection a second
    r.limits.configure(limited);
    FakeUpgradeLink link;
    r.s.set_upgrade_link(&link, false);
    MoveFds f;
    for (std::uint32_t id = 1; id <= 3; id++) {
        Received m = moving(id, { f.tcp.get(), f.unix_a.get() }, "198.51.100.7");
        REQUIRE(r.s.on_upgrade_message(m));
    }
    CHECK(channel_of(*r.workers[0]).moving_fds.size() == 3);
    CHECK(r.counts("198.51.100.7").connections == 3); // established: never refused
    // No token spent: a new connection from that address is still admitted by the rate.
    const auto now = SourceLimits::Clock::time_point(std::chrono::nanoseconds(r.clock.now));
    limited.source_max = 0;
    r.limits.configure(limited);
    CHECK(r.limits.admit(ip_of(ipv4("198.51.100.7")), now).verdict == Verdict::ok);
}

TEST_CASE("a taken-over balancer's PROXY LOCAL connection is not counted for the balancer")
{
    Counted r(10);
    FakeUpgradeLink link;
    r.s.set_upgrade_link(&link, false);
    MoveFds f;
    Received m = moving(1, { f.tcp.get(), f.unix_a.get() }, nullptr, 0, nullptr, "10.0.0.2");
    REQUIRE(r.s.on_upgrade_message(m));
    CHECK(channel_of(*r.workers[0]).moving_fds.size() == 1);
    CHECK(r.counts("10.0.0.2").connections == 0);
}

TEST_CASE("a give-back to the old parent that finds the channel full waits for room")
{
    NewParent r;
    auto full = connections(4); // -c 4 in the rig
    REQUIRE(r.d.hand_over(full));
    r.link.fail_with = EAGAIN;
    MoveFds f;
    LogCapture log;
    for (std::uint32_t id = 1; id <= 2; id++) {
        Received m = moving(id, { f.tcp.get(), f.unix_a.get() });
        REQUIRE(r.s.on_upgrade_message(m));
    }
    CHECK(r.link.waits > 0);
    CHECK_FALSE(log.has(LogLevel::err, "connection lost"));
    r.link.fail_with = 0;
    r.s.retry_moves();
    REQUIRE(r.link.sent.size() == 2);
    CHECK(decoded(r.link.sent[0]).id == 1);
    CHECK(decoded(r.link.sent[1]).id == 2);
    CHECK(r.s.queued_fds() == 0);
}

TEST_CASE("a connection from the old parent that waits a grace for a worker goes back")
{
    NewParent r; // -g 10
    WorkerSlot& w = *r.workers[0];
    channel_of(w).fail_with = EAGAIN;
    MoveFds f;
    Received m = moving(5, { f.tcp.get(), f.unix_a.get() });
    REQUIRE(r.s.on_upgrade_message(m));
    CHECK(r.link.sent.empty());
    CHECK(r.s.next_backstop_ns() == r.clock.now + 12'000'000'000);
    r.clock.advance_ms(12'000);
    r.s.tick();
    REQUIRE(r.link.sent.size() == 1);
    CHECK(decoded(r.link.sent[0]).id == 5);
    CHECK(r.s.queued_fds() == 0);
}
