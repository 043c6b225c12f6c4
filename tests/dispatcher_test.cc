// dispatcher_test.cc: where connections go, driven through fake channels: least-loaded choice
// and rotation, full workers, a full or broken channel, the pending queue and pausing.
#include "catch.h"
#include "dispatcher.h"
#include "fake_workers.h"

using namespace sniproxy;
using namespace sniproxy::test;

namespace {
struct Rig {
    FakeClock clock;
    WorkerList workers;
    Dispatcher d { workers, 4, clock };
    WorkerSlot& add(std::size_t inflight = 0, bool ready = true)
    {
        auto w = std::make_unique<WorkerSlot>();
        w->pid = static_cast<pid_t>(100 + workers.size());
        w->channel = std::make_unique<FakeChannel>();
        w->inflight = inflight;
        w->ready = ready;
        workers.push_back(std::move(w));
        return *workers.back();
    }
    bool give(std::size_t n)
    {
        auto batch = connections(n);
        return d.hand_over(batch);
    }
};
} // namespace

TEST_CASE("the least-loaded ready worker gets a batch; equals take turns")
{
    Rig r;
    WorkerSlot& a = r.add(2);
    WorkerSlot& b = r.add(1);
    WorkerSlot& c = r.add(1);
    r.add(0, false); // not ready: never chosen
    CHECK(r.give(1));
    CHECK(b.inflight == 2);
    // b and c were equal; b took one. Now c (1) is least loaded.
    CHECK(r.give(1));
    CHECK(c.inflight == 2);
    // a, b, c all hold 2: the turn goes on after the last chosen (c), so a.
    CHECK(r.give(1));
    CHECK(a.inflight == 3);
    CHECK(r.give(1));
    CHECK(b.inflight == 3);
    CHECK(channel_of(a).batches == std::vector<std::size_t> { 1 });
}

TEST_CASE("a batch goes in one message up to the worker's room; the rest to the next worker")
{
    Rig r;
    WorkerSlot& a = r.add(1);
    WorkerSlot& b = r.add(2);
    auto batch = connections(5);
    CHECK(r.d.hand_over(batch));
    CHECK(channel_of(a).batches == std::vector<std::size_t> { 3 }); // 1 + 3 = max 4
    CHECK(channel_of(b).batches == std::vector<std::size_t> { 2 });
    for (auto& p : batch)
        CHECK_FALSE(p.fd); // our copies are closed once sent
}

TEST_CASE("full workers leave connections pending, in order, and accepting pauses")
{
    Rig r;
    WorkerSlot& a = r.add(3);
    CHECK(r.d.wants_accepting());
    auto batch = connections(3);
    const int first_pending = batch[1].fd.get();
    CHECK_FALSE(r.d.hand_over(batch));
    CHECK(a.inflight == 4);
    CHECK(r.d.pending() == 2);
    CHECK_FALSE(r.d.wants_accepting());
    // One connection ends: the oldest pending one goes.
    std::string err;
    REQUIRE(r.d.on_closed(a, 1, &err));
    CHECK(r.d.pending() == 1);
    CHECK(channel_of(a).batches.back() == 1);
    REQUIRE(r.d.on_closed(a, 4, &err));
    CHECK(r.d.pending() == 0);
    CHECK(r.d.wants_accepting());
    (void)first_pending;
}

TEST_CASE("a count of closed connections larger than the worker holds is refused")
{
    Rig r;
    WorkerSlot& a = r.add(2);
    std::string err;
    CHECK_FALSE(r.d.on_closed(a, 3, &err));
    CHECK(err.find("holding 2") != std::string::npos);
    CHECK(a.inflight == 2);
}

TEST_CASE("a full channel is skipped until it has room; a broken one gets nothing more")
{
    Rig r;
    WorkerSlot& a = r.add(0);
    WorkerSlot& b = r.add(1);
    channel_of(a).fail_with = EAGAIN;
    CHECK(r.give(1));
    CHECK(channel_of(a).waits == 1);
    CHECK(a.waiting_for_room);
    CHECK(b.inflight == 2); // went to the next worker
    channel_of(a).fail_with = 0;
    r.d.on_room(a);
    CHECK_FALSE(a.waiting_for_room);
    CHECK(r.give(1));
    CHECK(a.inflight == 1);

    channel_of(b).fail_with = EPIPE;
    channel_of(a).fail_with = EPIPE;
    CHECK_FALSE(r.give(1));
    CHECK(a.broken);
    CHECK(b.broken);
    CHECK(a.inflight == 1); // what they hold stays theirs until they exit
    CHECK(r.d.pending() == 1); // nothing dropped
    CHECK(r.d.least_loaded() == nullptr);
}

TEST_CASE("too many descriptors in flight (ETOOMANYREFS) is transient: kept, paused, retried")
{
    // The outage of issue 11: workers briefly stopped, the kernel refused more descriptors in
    // flight, every worker was retired for good and nothing was accepted again.
    Rig r;
    WorkerSlot& a = r.add(0);
    WorkerSlot& b = r.add(0);
    channel_of(a).fail_with = ETOOMANYREFS;
    channel_of(b).fail_with = ETOOMANYREFS;
    CHECK_FALSE(r.give(3));
    CHECK(r.d.pending() == 3);
    CHECK_FALSE(a.broken);
    CHECK_FALSE(b.broken);
    CHECK(a.ready);
    CHECK_FALSE(r.d.wants_accepting()); // the kernel backlog holds new clients meanwhile
    CHECK(r.d.paused_until_ns() > 0);
    channel_of(a).fail_with = 0;
    channel_of(b).fail_with = 0;
    r.d.resume();
    CHECK(r.d.pending() == 0);
    CHECK(a.inflight + b.inflight == 3);
    CHECK(r.d.wants_accepting());
}

TEST_CASE("kernel memory shortage pauses for a second, keeping the connections")
{
    Rig r;
    WorkerSlot& a = r.add(0);
    channel_of(a).fail_with = ENOBUFS;
    CHECK_FALSE(r.give(2));
    CHECK(a.ready); // not the worker's fault
    CHECK(r.d.pending() == 2);
    CHECK(r.d.paused_until_ns() == r.clock.now + 1'000'000'000);
    channel_of(a).fail_with = 0;
    r.d.resume();
    CHECK(r.d.pending() == 0);
    CHECK(r.d.wants_accepting());
}

TEST_CASE("a stopped dispatcher never accepts again")
{
    Rig r;
    r.add(0);
    r.d.stop();
    CHECK_FALSE(r.d.wants_accepting());
}

TEST_CASE("equal workers take turns even when their loads return to equal")
{
    Rig r;
    WorkerSlot& a = r.add(0);
    WorkerSlot& b = r.add(0);
    std::string err;
    CHECK(r.give(1));
    CHECK(a.inflight == 1);
    REQUIRE(r.d.on_closed(a, 1, &err)); // both idle again
    CHECK(r.give(1));
    CHECK(b.inflight == 1); // not a again
    REQUIRE(r.d.on_closed(b, 1, &err));
    CHECK(r.give(1));
    CHECK(a.inflight == 1);
}
