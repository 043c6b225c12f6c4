// supervisor_queues_test.cc: moves that wait in the parent for room, through the fakes. A
// queued connection is in transit: its worker cannot hand it over again nor report it closed
// (a lie that would multiply it); taken over after its worker ended it is counted for the
// source its record had; the queues are bounded by descriptors and by the grace; give-backs
// wait for room instead of being lost; a failing channel is skipped, not retried forever;
// descriptors cut on arrival cost the connection, not the worker.
#include "catch.h"
#include "fake_workers.h"
#include "moving_forward.h"
#include "supervisor.h"
#include "supervisor_rig.h"

#include <variant>

using namespace sniproxy;
using namespace sniproxy::test;

namespace {
// A rollover: the old worker holds connections 1 and 2 (routed), the one new worker's channel
// fails sends with `fresh_fails` (EAGAIN: full).
struct Moving : Rig {
    WorkerSlot* old = nullptr;
    WorkerSlot* fresh = nullptr;
    MoveFds f;
    explicit Moving(int fresh_fails)
        : Rig(1)
    {
        old = &holding(*this, 2, { 1, 2 });
        s.rollover();
        all_ready();
        fresh = of_generation(2).at(0);
        channel_of(*fresh).fail_with = fresh_fails;
    }
    bool hand(std::uint32_t id, const char* source = nullptr)
    {
        Received m = moving(id, { f.tcp.get(), f.unix_a.get() }, source);
        return s.on_message(*old, m);
    }
    void room()
    {
        channel_of(*fresh).fail_with = 0;
        d.on_room(*fresh);
        s.retry_moves();
    }
};
} // namespace

TEST_CASE("a queued connection handed over again is a violation, and what it queued is closed")
{
    Moving r(EAGAIN);
    REQUIRE(r.hand(1));
    CHECK(r.s.queued_fds() == 2);
    LogCapture log;
    SECTION("a second moving message for it")
    {
        CHECK_FALSE(r.hand(1));
        CHECK(log.has(LogLevel::err, "handed over connection 1 a second time"));
    }
    SECTION("a closed report for it")
    {
        CHECK_FALSE(r.say(*r.old, encode(with_ids<ClosedMsg>({ 1 }))));
        CHECK(log.has(LogLevel::err, "reported connection 1 closed, which it handed over"));
    }
    CHECK(r.spawner.killed(r.old->pid));
    CHECK(log.has(LogLevel::err, "1 queued connection(s) it handed over closed"));
    CHECK(r.s.queued_fds() == 0);
    r.s.child_exited(r.old->pid, killed_9);
    r.room();
    CHECK(channel_of(*r.fresh).moving_fds.empty()); // nothing pushed into the new generation
    CHECK(r.fresh->inflight == 0);
}

TEST_CASE("taken over after its worker ended, a connection counts for its record's source")
{
    Rig r(1);
    Settings settings;
    SourceLimits limits(settings, { 1, 2 });
    r.d.set_limits(&limits);
    r.all_ready();
    WorkerSlot& old = *r.workers[0];
    auto batch = connections(1);
    const auto now = SourceLimits::Clock::time_point(std::chrono::nanoseconds(r.clock.now));
    batch[0].key = limits.admit(ip_of(ipv4("192.0.2.1")), now).key;
    REQUIRE(r.d.hand_over(batch));
    REQUIRE(r.say(old, encode(with_ids<HelloDoneMsg>({ 1 }))));
    r.s.rollover();
    r.all_ready();
    WorkerSlot& fresh = *r.of_generation(2).at(0);
    channel_of(fresh).fail_with = EAGAIN;
    MoveFds f;
    Received m = moving(1, { f.tcp.get(), f.unix_a.get() }, "203.0.113.9"); // the worker's word
    REQUIRE(r.s.on_message(old, m));
    r.s.child_exited(old.pid, 0);
    const auto of = [&](const char* a) { return limits.counts(limits.key_of(ip_of(ipv4(a)))); };
    CHECK(of("192.0.2.1").connections == 0);
    channel_of(fresh).fail_with = 0;
    r.d.on_room(fresh);
    r.s.retry_moves();
    REQUIRE(channel_of(fresh).moving_fds.size() == 1);
    CHECK(of("192.0.2.1").connections == 1);
    CHECK(of("192.0.2.1").hellos == 0);
    CHECK(of("203.0.113.9").connections == 0);
}

TEST_CASE("the queues hold at most their descriptor budget; past it a move is given back")
{
    Moving r(EAGAIN);
    r.s.set_queued_fd_budget(3);
    REQUIRE(r.hand(1));
    REQUIRE(r.hand(2)); // 2 + 2 > 3
    CHECK(r.s.queued_fds() == 2);
    CHECK(r.old->moves_refused == 1);
    CHECK(channel_of(*r.old).moving_fds == std::vector<std::size_t> { 2 });
    r.room();
    CHECK(channel_of(*r.fresh).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(r.s.queued_fds() == 0);
}

TEST_CASE("a moving message whose descriptors were cut costs the connection, not the worker")
{
    Moving r(0);
    LogCapture log;
    CHECK(r.s.on_moving_cut(*r.old, 1));
    CHECK(log.has(LogLevel::err, "connection 1 lost: its descriptors were cut on arrival"));
    CHECK_FALSE(r.old->violated);
    CHECK_FALSE(r.old->held.contains(1));
    CHECK(r.old->inflight == 1);
    CHECK(r.s.moves_cut() == 1);
    // An id it could not have handed over is still a lie.
    CHECK_FALSE(r.s.on_moving_cut(*r.old, 9));
    CHECK(r.old->violated);
}

TEST_CASE("a cut message on the upgrade channel loses that connection; the channel stays open")
{
    Rig r(1);
    r.all_ready();
    FakeUpgradeLink link;
    r.s.set_upgrade_link(&link, false);
    LogCapture log;
    r.s.on_upgrade_cut(5);
    CHECK(log.has(LogLevel::err, "upgrade channel: connection 5 lost"));
    CHECK(r.s.upgrade_link_open());
}

TEST_CASE("a give-back that finds its old worker's channel full waits for room")
{
    Moving r(0);
    auto full = connections(4); // -c 4 in the rig: the new worker has no room
    REQUIRE(r.d.hand_over(full));
    channel_of(*r.old).fail_with = EAGAIN;
    REQUIRE(r.hand(1));
    REQUIRE(r.hand(2));
    CHECK(channel_of(*r.old).waits > 0);
    CHECK(r.old->moves_refused == 2);
    CHECK(r.s.queued_fds() == 4);
    CHECK_FALSE(r.say(*r.old, encode(with_ids<ClosedMsg>({ 1 })))); // it has not got it
    CHECK(r.old->violated);
}

TEST_CASE("queued give-backs reach the old worker when its channel has room")
{
    Moving r(0);
    auto full = connections(4);
    REQUIRE(r.d.hand_over(full));
    channel_of(*r.old).fail_with = EAGAIN;
    REQUIRE(r.hand(1));
    REQUIRE(r.hand(2));
    CHECK(channel_of(*r.old).moving_fds.empty());
    channel_of(*r.old).fail_with = 0;
    r.s.on_room(*r.old);
    r.s.retry_moves();
    CHECK(channel_of(*r.old).moving_fds == std::vector<std::size_t> { 2, 2 });
    CHECK(r.s.queued_fds() == 0);
    // It has them again: its reports of them closed are true now.
    CHECK(r.say(*r.old, encode(with_ids<ClosedMsg>({ 1, 2 }))));
    CHECK(r.old->inflight == 0);
}

TEST_CASE("a new worker whose channel fails is skipped and the next one takes the connection")
{
    Rig r(2);
    r.all_ready();
    WorkerSlot& old = *r.workers[0];
    auto one = connections(1);
    REQUIRE(r.d.hand_over(one)); // to the first worker, as connection 1
    REQUIRE(r.say(old, encode(with_ids<HelloDoneMsg>({ 1 }))));
    r.s.rollover();
    r.all_ready();
    WorkerSlot& failing = *r.of_generation(2).at(0); // the first one tried
    WorkerSlot& other = *r.of_generation(2).at(1);
    channel_of(failing).fail_with = EPIPE;
    MoveFds f;
    LogCapture log;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    CHECK(failing.broken);
    CHECK(log.has(LogLevel::err, "no more connections for it"));
    CHECK(channel_of(other).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(other.held.contains(1));
    CHECK(old.moves_refused == 0);
}

TEST_CASE("a rollover's queued connection goes back to its worker a grace later")
{
    Moving r(EAGAIN); // -g 10
    REQUIRE(r.hand(1));
    CHECK(r.s.next_backstop_ns() <= r.clock.now + 12'000'000'000);
    r.clock.advance_ms(12'000);
    r.s.tick();
    CHECK(channel_of(*r.old).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(r.old->moves_refused == 1);
    CHECK(r.s.queued_fds() == 0);
    CHECK(r.say(*r.old, encode(with_ids<ClosedMsg>({ 1 })))); // its own again
}

TEST_CASE("only a moving message with fewer descriptors than sent counts as cut")
{
    MoveFds f;
    Received m = moving(7, { f.tcp.get() });
    CHECK_FALSE(cut_moving_id(m)); // not cut: the decoder refuses it
    m.fds_truncated = true; // MSG_CTRUNC: one of two arrived
    CHECK(cut_moving_id(m) == 7u);
    Received many = moving(7, { f.tcp.get(), f.unix_a.get(), f.pipe_r.get() });
    many.fds_truncated = true; // more than a moving message carries: a lie
    CHECK_FALSE(cut_moving_id(many));
}
