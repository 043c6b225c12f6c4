// supervisor_test.cc: the workers' lives driven through a fake spawner, fake channels and a
// fake clock: generations and rapid SIGHUPs, drain and its backstop deadline, respawn with
// back-off, a worker dying with connections pending, and protocol violations by a worker.
#include "catch.h"
#include "loopback.h"
#include "fake_workers.h"
#include "supervisor.h"
#include "supervisor_rig.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

using namespace sniproxy;
using namespace sniproxy::test;


TEST_CASE("a new generation drains the old one only once all its workers are ready")
{
    Rig r;
    r.all_ready();
    auto old = r.of_generation(1);
    r.s.rollover();
    REQUIRE(r.of_generation(2).size() == 2);
    REQUIRE(r.say(*r.of_generation(2)[0], encode(ReadyMsg {})));
    CHECK_FALSE(old[0]->draining); // half ready: the old generation still serves
    REQUIRE(r.say(*r.of_generation(2)[1], encode(ReadyMsg {})));
    CHECK(old[0]->draining);
    CHECK(old[1]->draining);
    CHECK(channel_of(*old[0]).sent == std::vector<Msg> { Msg::drain });
}

TEST_CASE("rapid SIGHUPs: a half-ready generation is superseded, not left serving beside")
{
    Rig r;
    r.all_ready();
    r.s.rollover(); // generation 2
    auto gen2 = r.of_generation(2);
    REQUIRE(r.say(*gen2[0], encode(ReadyMsg {}))); // one of two ready
    r.s.rollover(); // generation 3 supersedes 2
    CHECK(r.spawner.killed(gen2[1]->pid)); // not ready: holds nothing, killed
    CHECK(gen2[1]->superseded);
    CHECK(gen2[0]->draining); // ready: drains while generation 1 still serves
    for (auto* w : r.of_generation(1))
        CHECK_FALSE(w->draining);
    // The killed one is reaped: expected, not respawned.
    r.s.child_exited(gen2[1]->pid, killed_9);
    r.clock.advance_ms(60'000);
    r.s.tick();
    CHECK(r.spawner.spawned.size() == 6); // 2 + 2 + 2, no respawn
}

TEST_CASE("each draining worker is killed at its own deadline, whatever SIGHUPs follow")
{
    Rig r(1, 10);
    r.all_ready();
    WorkerSlot* first = r.workers[0].get();
    r.s.rollover();
    r.all_ready(); // generation 2 ready: first drains, deadline grace + 2 s
    REQUIRE(first->draining);
    const std::int64_t deadline = r.s.next_backstop_ns();
    CHECK(deadline == r.clock.now + 12'000'000'000);
    r.clock.advance_ms(5'000);
    r.s.rollover(); // more SIGHUPs must not postpone it
    r.all_ready();
    CHECK(r.s.next_backstop_ns() == deadline);
    r.clock.advance_ms(6'999);
    r.s.tick();
    CHECK_FALSE(r.spawner.killed(first->pid));
    r.clock.advance_ms(1);
    r.s.tick();
    CHECK(r.spawner.killed(first->pid));
}

TEST_CASE("workers dying young back off 100 ms doubling to 30 s; a long-lived one resets it")
{
    Rig r(1);
    r.all_ready();
    std::int64_t expected = 100;
    for (int i = 0; i < 12; i++) {
        const pid_t pid = r.workers[0]->pid;
        r.clock.advance_ms(500); // died young
        r.s.child_exited(pid, exited_1);
        CHECK(r.s.respawn_delay_ms() == expected);
        CHECK(r.s.next_respawn_ns() == r.clock.now + expected * 1'000'000);
        r.clock.advance_ms(expected - 1);
        r.s.tick();
        CHECK(r.workers.empty()); // not yet
        r.clock.advance_ms(1);
        r.s.tick();
        REQUIRE(r.workers.size() == 1);
        REQUIRE(r.say(*r.workers[0], encode(ReadyMsg {}))); // dying after ready still counts
        expected = std::min<std::int64_t>(expected * 2, 30'000);
    }
    CHECK(r.s.respawn_delay_ms() == 30'000);
    r.clock.advance_ms(5'000); // outlived the crash window
    r.s.child_exited(r.workers[0]->pid, exited_1);
    CHECK(r.s.respawn_delay_ms() == 0);
}

TEST_CASE("SIGHUP cancels a pending respawn and the back-off")
{
    Rig r(1);
    r.all_ready();
    r.s.child_exited(r.workers[0]->pid, exited_1);
    REQUIRE(r.s.next_respawn_ns() != 0);
    r.s.rollover();
    CHECK(r.s.next_respawn_ns() == 0);
    CHECK(r.s.respawn_delay_ms() == 0);
}

TEST_CASE("a worker dying with connections pending: they go to the one that replaces it")
{
    Rig r(1);
    r.all_ready();
    WorkerSlot& w = *r.workers[0];
    auto batch = connections(6);
    CHECK_FALSE(r.d.hand_over(batch)); // 4 taken, 2 pending
    REQUIRE(r.d.pending() == 2);
    LogCapture log;
    r.clock.advance_ms(10'000);
    r.s.child_exited(w.pid, killed_9);
    CHECK(log.has(LogLevel::err, "4 of its connections lost"));
    r.s.tick(); // no back-off: it lived long
    REQUIRE(r.workers.size() == 1);
    CHECK(r.d.pending() == 2); // kept, not dropped
    REQUIRE(r.say(*r.workers[0], encode(ReadyMsg {})));
    CHECK(r.d.pending() == 0);
    CHECK(channel_of(*r.workers[0]).connections() == 2);
}

TEST_CASE("a drain message that finds the channel full is sent when it has room")
{
    Rig r(1);
    r.all_ready();
    WorkerSlot& w = *r.workers[0];
    channel_of(w).fail_with = EAGAIN;
    r.s.stop(false);
    CHECK(w.drain_owed);
    CHECK(channel_of(w).sent.empty());
    channel_of(w).fail_with = 0;
    r.s.on_room(w);
    CHECK(channel_of(w).sent == std::vector<Msg> { Msg::drain });
    CHECK_FALSE(r.s.finished());
    r.s.child_exited(w.pid, 0);
    CHECK(r.s.finished());
}

TEST_CASE("a worker that breaks the protocol is logged and replaced")
{
    Rig r(1);
    r.all_ready();
    WorkerSlot& w = *r.workers[0];
    const pid_t pid = w.pid;
    LogCapture log;
    SECTION("ready twice (unexpected in its state)")
    {
        CHECK_FALSE(r.say(w, encode(ReadyMsg {})));
    }
    SECTION("a count of closed connections it was never given")
    {
        CHECK_FALSE(r.say(w, encode(with_ids<ClosedMsg>({ 1 }))));
    }
    SECTION("a hello done of a connection it was never given")
    {
        CHECK_FALSE(r.say(w, encode(with_ids<HelloDoneMsg>({ 1 }))));
    }
    SECTION("the source of a connection it was never given")
    {
        CHECK_FALSE(r.say(w, encode(SourceMsg { 1, ipv4("192.0.2.1") })));
    }
    SECTION("a malformed closed message")
    {
        const std::uint8_t short_count[] = { 1, 0 };
        Received m = Rig::message(Msg::closed, short_count);
        CHECK_FALSE(r.s.on_message(w, m));
    }
    SECTION("a message only the parent sends")
    {
        Received m = Rig::message(Msg::drain, std::vector<std::uint8_t>(4));
        CHECK_FALSE(r.s.on_message(w, m));
    }
    SECTION("a log level out of range")
    {
        const std::uint8_t bad[] = { 0, 'x' };
        Received m = Rig::message(Msg::log, bad);
        CHECK_FALSE(r.s.on_message(w, m));
    }
    CHECK(log.has(LogLevel::err, "protocol violation"));
    CHECK(r.spawner.killed(pid));
    CHECK_FALSE(w.ready); // no more connections for it
    CHECK_FALSE(r.say(w, encode(ReadyMsg {}))); // and nothing more is read from it
    r.clock.advance_ms(10'000);
    r.s.child_exited(pid, killed_9);
    r.s.tick();
    REQUIRE(r.workers.size() == 1);
    CHECK(r.workers[0]->pid != pid);
}

TEST_CASE("a rollover never kills a worker that holds connections; it drains within the grace")
{
    Rig r(1);
    r.all_ready();
    WorkerSlot& w = *r.workers[0];
    auto batch = connections(2);
    REQUIRE(r.d.hand_over(batch));
    w.ready = false; // as after a failed hand-over in the old code, or a worker not yet ready
    r.s.rollover();
    CHECK_FALSE(r.spawner.killed(w.pid));
    CHECK(w.draining);
    LogCapture log;
    r.clock.advance_ms(13'000); // grace 10 s + the 2 s margin
    r.s.tick();
    CHECK(r.spawner.killed(w.pid));
    r.s.child_exited(w.pid, killed_9);
    CHECK(log.has(LogLevel::err, "2 of its connections lost"));
}

TEST_CASE("a flood of log records is cut at the limit per second and the excess reported")
{
    Rig r(1);
    r.all_ready();
    WorkerSlot& w = *r.workers[0];
    LogCapture log;
    const auto record = encode(LogMsg { LogLevel::info, "client=x result=ok" });
    for (std::uint32_t i = 0; i < Supervisor::max_records_per_second + 500; i++)
        REQUIRE(r.say(w, record));
    std::size_t written = 0;
    for (auto& [level, text] : log.lines)
        written += text.find("client=x") != std::string::npos;
    CHECK(written == Supervisor::max_records_per_second);
    r.clock.advance_ms(1'000);
    r.s.tick();
    CHECK(log.has(LogLevel::err, "500 log record(s) suppressed"));
    CHECK(r.say(w, record)); // a new second: records pass again
    CHECK(log.lines.back().second.find("client=x") != std::string::npos);
}

TEST_CASE("well-formed messages are accepted: logs pass through escaped, counts are applied")
{
    Rig r(1);
    r.all_ready();
    WorkerSlot& w = *r.workers[0];
    auto batch = connections(3);
    REQUIRE(r.d.hand_over(batch));
    LogCapture log;
    CHECK(r.say(w, encode(LogMsg { LogLevel::warning, "hello\nforged" })));
    CHECK(log.has(LogLevel::warning, "hello"));
    CHECK_FALSE(log.has(LogLevel::warning, "\n"));
    ClosedMsg closed;
    take_ids(channel_of(w).ids, &closed);
    CHECK(r.say(w, encode(closed)));
    CHECK(w.inflight == 0);
    CHECK(r.spawner.kills.empty());
}

TEST_CASE("a second stop kills every worker at once")
{
    Rig r(2);
    r.all_ready();
    r.s.stop(false);
    CHECK_FALSE(r.s.finished());
    r.s.stop(true);
    CHECK(r.s.finished());
    CHECK(r.spawner.kills.size() == 2);
}


TEST_CASE("per-source counts follow the worker's reports and survive its crash")
{
    Counted r(3);
    WorkerSlot& w = *r.workers[0];
    auto batch = admitted(r.limits, "192.0.2.1", 3, r.clock.now);
    REQUIRE(r.d.hand_over(batch));
    CHECK(r.counts("192.0.2.1").connections == 3);
    CHECK(r.counts("192.0.2.1").hellos == 3);
    CHECK(r.d.hellos() == 3);
    const std::vector<std::uint32_t> ids = channel_of(w).ids;
    CHECK(r.say(w, encode(with_ids<HelloDoneMsg>({ ids[0], ids[1] }))));
    CHECK(r.counts("192.0.2.1").hellos == 1);
    CHECK(r.d.hellos() == 1);
    CHECK(r.say(w, encode(with_ids<ClosedMsg>({ ids[0], ids[2] })))); // one routed, one not
    CHECK(r.counts("192.0.2.1").connections == 1);
    CHECK(r.counts("192.0.2.1").hellos == 0);
    // A hello reported twice is a lie, so is one of a closed connection.
    LogCapture log;
    SECTION("a crash releases what the worker held")
    {
        auto more = admitted(r.limits, "192.0.2.1", 2, r.clock.now);
        REQUIRE(r.d.hand_over(more));
        CHECK(r.counts("192.0.2.1").connections == 3);
        r.s.child_exited(w.pid, killed_9);
        CHECK(r.counts("192.0.2.1").connections == 0);
        CHECK(r.counts("192.0.2.1").hellos == 0);
        CHECK(r.d.hellos() == 0);
    }
    SECTION("a hello reported done twice is a protocol violation")
    {
        CHECK_FALSE(r.say(w, encode(with_ids<HelloDoneMsg>({ ids[1] }))));
        CHECK(log.has(LogLevel::err, "twice"));
    }
    SECTION("a connection reported closed twice is a protocol violation")
    {
        CHECK_FALSE(r.say(w, encode(with_ids<ClosedMsg>({ ids[0] }))));
        CHECK(log.has(LogLevel::err, "does not hold"));
    }
}

TEST_CASE("a reported source is admitted under that source and answered with a verdict")
{
    Counted r(1);
    WorkerSlot& w = *r.workers[0];
    // From a balancer: not counted under its address (what the gate does on accept).
    auto batch = connections(3);
    for (auto& p : batch) {
        p.key = r.limits.key_of(ip_of(ipv4("10.9.9.9")));
        p.key.counted = false;
        p.info.from_balancer = true;
    }
    REQUIRE(r.d.hand_over(batch));
    const std::vector<std::uint32_t> ids = channel_of(w).ids;
    CHECK(r.say(w, encode(SourceMsg { ids[0], ipv4("198.51.100.7") })));
    CHECK(r.say(w, encode(SourceMsg { ids[1], ipv4("198.51.100.7") }))); // source-max is 1
    CHECK(r.say(w, encode(SourceMsg { ids[2], ipv4("198.51.100.8") })));
    std::vector<VerdictMsg> verdicts;
    for (const Encoded& e : channel_of(w).messages) {
        Received m = Rig::message(e.type, e.bytes());
        FromParent msg;
        std::string err;
        REQUIRE(decode_from_parent(m, &msg, &err));
        verdicts.push_back(std::get<VerdictMsg>(msg));
    }
    REQUIRE(verdicts.size() == 3);
    CHECK((verdicts[0].id == ids[0] && verdicts[0].verdict == Verdict::ok));
    CHECK((verdicts[1].id == ids[1] && verdicts[1].verdict == Verdict::limit_source));
    CHECK((verdicts[2].id == ids[2] && verdicts[2].verdict == Verdict::ok));
    CHECK(r.counts("198.51.100.7").connections == 1);
    CHECK(r.counts("10.9.9.9").connections == 0);
    // The refused one closes: nothing to release. The admitted one ends: its source is free.
    CHECK(r.say(w, encode(with_ids<ClosedMsg>({ ids[1], ids[0] }))));
    CHECK(r.counts("198.51.100.7").connections == 0);
    LogCapture log;
    CHECK_FALSE(r.say(w, encode(SourceMsg { ids[2], ipv4("198.51.100.9") }))); // twice
    CHECK(log.has(LogLevel::err, "a second time"));
}

TEST_CASE("a source reported for a connection not from a balancer is a violation")
{
    // A hijacked worker must not move a direct client's count onto someone else.
    Counted r(1);
    WorkerSlot& w = *r.workers[0];
    auto batch = connections(1);
    batch[0].key = r.limits.admit(ip_of(ipv4("192.0.2.1")), {}).key; // counted, direct
    REQUIRE(r.d.hand_over(batch));
    LogCapture log;
    CHECK_FALSE(r.say(w, encode(SourceMsg { channel_of(w).ids[0], ipv4("198.51.100.7") })));
    CHECK(log.has(LogLevel::err, "which is not from a balancer"));
    CHECK(r.counts("198.51.100.7").connections == 0);
}

TEST_CASE("a verdict that finds the channel full waits for room")
{
    Counted r(0);
    WorkerSlot& w = *r.workers[0];
    auto batch = connections(1);
    batch[0].info.from_balancer = true;
    REQUIRE(r.d.hand_over(batch));
    channel_of(w).fail_with = EAGAIN;
    CHECK(r.say(w, encode(SourceMsg { channel_of(w).ids[0], ipv4("198.51.100.7") })));
    CHECK(channel_of(w).messages.empty());
    channel_of(w).fail_with = 0;
    r.s.on_room(w);
    REQUIRE(channel_of(w).messages.size() == 1);
    CHECK(channel_of(w).messages[0].type == Msg::verdict);
}


TEST_CASE("a draining worker's established connection moves to the new generation")
{
    Rig r(1);
    WorkerSlot& old = holding(r, 3, { 1, 2 });
    r.s.rollover();
    r.all_ready();
    REQUIRE(old.draining);
    WorkerSlot& fresh = *r.of_generation(2).at(0);
    auto& fresh_channel = static_cast<FakeChannel&>(*fresh.channel);
    MoveFds f;

    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    REQUIRE(hand_over_moving(r, old, 2, { f.tcp.get(), f.unix_a.get(), f.pipe_r.get() }, 10));
    CHECK(fresh_channel.moving_fds == std::vector<std::size_t> { 2, 3 });
    CHECK(fresh.held.contains(1));
    CHECK(fresh.held.contains(2));
    CHECK_FALSE(old.held.contains(1));
    CHECK(old.inflight == 1);
    CHECK(fresh.inflight == 2);
    // The new worker reports it closed: it is the new worker's now.
    CHECK(r.say(fresh, encode(with_ids<ClosedMsg>({ 1 }))));
}

TEST_CASE("a moving message with a foreign descriptor or id is a violation, nothing forwarded")
{
    Rig r(1);
    WorkerSlot& old = holding(r, 2, { 1 });
    MoveFds f;
    SECTION("not draining")
    {
        CHECK_FALSE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    }
    r.s.rollover();
    r.all_ready();
    auto& fresh_channel = static_cast<FakeChannel&>(*r.of_generation(2).at(0)->channel);
    LogCapture log;
    SECTION("a pipe where the client belongs")
    {
        CHECK_FALSE(hand_over_moving(r, old, 1, { f.pipe_r.get(), f.unix_a.get() }));
        CHECK(log.has(LogLevel::err, "the client is not a socket"));
    }
    SECTION("a Unix socket where the client belongs")
    {
        CHECK_FALSE(hand_over_moving(r, old, 1, { f.unix_b.get(), f.unix_a.get() }));
    }
    SECTION("a TCP socket where the backend belongs")
    {
        CHECK_FALSE(hand_over_moving(r, old, 1, { f.tcp.get(), f.tcp.get() }));
    }
    SECTION("a socket where the pipe belongs")
    {
        const auto fds = { f.tcp.get(), f.unix_a.get(), f.unix_b.get() };
        CHECK_FALSE(hand_over_moving(r, old, 1, fds, 5));
    }
    SECTION("an id it does not hold, or one still in its hello")
    {
        CHECK_FALSE(hand_over_moving(r, old, 9, { f.tcp.get(), f.unix_a.get() }));
        CHECK(log.has(LogLevel::err, "which it does not hold"));
    }
    SECTION("one still in its hello")
    {
        CHECK_FALSE(hand_over_moving(r, old, 2, { f.tcp.get(), f.unix_a.get() }));
    }
    CHECK(old.violated);
    CHECK(fresh_channel.moving_fds.empty());
}

TEST_CASE("a connection no new worker has room for goes back to its old worker")
{
    Rig r(1);
    WorkerSlot& old = holding(r, 1, { 1 });
    r.s.rollover();
    r.all_ready();
    WorkerSlot& fresh = *r.of_generation(2).at(0);
    auto more = connections(4); // the new worker is full (-c 4 in the rig)
    REQUIRE(r.d.hand_over(more));
    MoveFds f;
    REQUIRE(hand_over_moving(r, old, 1, { f.tcp.get(), f.unix_a.get() }));
    CHECK(static_cast<FakeChannel&>(*old.channel).moving_fds == std::vector<std::size_t> { 2 });
    CHECK(static_cast<FakeChannel&>(*fresh.channel).moving_fds.empty());
    CHECK(old.held.contains(1));
    CHECK(old.moves_refused == 1);
    LogCapture log;
    r.s.child_exited(old.pid, killed_9);
    CHECK(log.has(LogLevel::err,
        "0 connection(s) moved to newer workers, 1 kept for want of room, "
        "1 of its connections lost"));
}
