// dispatcher_test.cc: where connections go, driven through fake channels: least-loaded choice
// and rotation, full workers, a full or broken channel, the pending queue and pausing.
#include "catch.h"
#include "dispatcher.h"
#include "fake_workers.h"

#include <algorithm>
#include <cstring>

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
    WorkerSlot& a = r.add(0);
    CHECK(r.d.wants_accepting());
    auto batch = connections(6);
    CHECK_FALSE(r.d.hand_over(batch));
    CHECK(a.inflight == 4);
    CHECK(r.d.pending() == 2);
    CHECK_FALSE(r.d.wants_accepting());
    // One connection ends: the oldest pending one goes.
    std::string err;
    const std::vector<std::uint32_t> first = channel_of(a).ids;
    REQUIRE(r.d.on_closed(a, std::span(first).first(1), &err));
    CHECK(r.d.pending() == 1);
    CHECK(channel_of(a).batches.back() == 1);
    const std::vector<std::uint32_t> all = channel_of(a).ids;
    REQUIRE(r.d.on_closed(a, std::span(all).subspan(1), &err));
    CHECK(r.d.pending() == 0);
    CHECK(a.inflight == 1);
    CHECK(r.d.wants_accepting());
}

TEST_CASE("each connection has its own id; a report of one the worker does not hold is refused")
{
    Rig r;
    WorkerSlot& a = r.add(0);
    REQUIRE(r.give(2));
    const std::vector<std::uint32_t> ids = channel_of(a).ids;
    REQUIRE(ids.size() == 2);
    CHECK(ids[0] != ids[1]);
    CHECK(ids[0] != 0);
    std::string err;
    const std::uint32_t stranger[] = { ids[0] + ids[1] + 1 };
    CHECK_FALSE(r.d.on_closed(a, stranger, &err));
    CHECK(err.find("does not hold") != std::string::npos);
    CHECK_FALSE(r.d.on_hello_done(a, stranger, &err));
    REQUIRE(r.d.on_hello_done(a, std::span(ids).first(1), &err));
    CHECK_FALSE(r.d.on_hello_done(a, std::span(ids).first(1), &err)); // twice
    CHECK(err.find("twice") != std::string::npos);
    REQUIRE(r.d.on_closed(a, std::span(ids).first(1), &err));
    CHECK_FALSE(r.d.on_closed(a, std::span(ids).first(1), &err)); // closed twice
    CHECK(a.inflight == 1);
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
    REQUIRE(r.d.on_closed(a, channel_of(a).ids, &err)); // both idle again
    CHECK(r.give(1));
    CHECK(b.inflight == 1); // not a again
    REQUIRE(r.d.on_closed(b, channel_of(b).ids, &err));
    CHECK(r.give(1));
    CHECK(a.inflight == 1);
}

TEST_CASE("under pressure the oldest hellos of the sources holding the most are shed")
{
    Rig r; // a capacity of 8: shedding from 90 % (8 hellos, as 7.2 rounds up)
    WorkerSlot& a = r.add(0);
    WorkerSlot& b = r.add(0);
    WorkerSlot& c = r.add(0);
    r.d.set_capacity(8);
    Settings settings;
    SourceLimits limits(settings, { 3, 4 });
    r.d.set_limits(&limits);
    auto real = admitted(limits, "192.0.2.1", 1, r.clock.now);
    REQUIRE(r.d.hand_over(real));
    auto noisy = admitted(limits, "203.0.113.9", 6, r.clock.now + 1000);
    REQUIRE(r.d.hand_over(noisy));
    CHECK(r.d.shed_if_needed() == 0); // 7 of 8: below 90 %
    // One established connection does not count: route the real client's.
    const std::uint32_t real_id = channel_of(a).ids[0];
    std::string err;
    const std::uint32_t routed[] = { real_id };
    REQUIRE(r.d.on_hello_done(a, routed, &err));
    auto two = admitted(limits, "203.0.113.9", 2, r.clock.now + 2000);
    REQUIRE(r.d.hand_over(two)); // 8 in the hello phase of 8
    CHECK(r.d.shed_if_needed() == 2); // down to 80 %: 6
    CHECK(r.d.hellos() == 6);
    std::vector<std::uint32_t> shed;
    for (WorkerSlot* w : { &a, &b, &c })
        for (const Encoded& e : channel_of(*w).messages) {
            REQUIRE(e.type == Msg::shed);
            Received m;
            m.type = e.type;
            std::memcpy(m.payload, e.payload.data(), e.payload.size());
            m.payload_len = e.payload.size();
            FromParent msg;
            REQUIRE(decode_from_parent(m, &msg, &err));
            for (std::uint32_t id : std::get<ShedMsg>(msg).span())
                shed.push_back(id);
        }
    // The noisy source's two oldest, never the established one.
    const std::uint32_t oldest[] = { channel_of(b).ids[0], channel_of(b).ids[1] };
    std::sort(shed.begin(), shed.end());
    std::vector<std::uint32_t> want(std::begin(oldest), std::end(oldest));
    std::sort(want.begin(), want.end());
    CHECK(shed == want);
    CHECK(r.d.shed_if_needed() == 0); // not twice
    // They close: counted as in their hello phase.
    REQUIRE(r.d.on_closed(b, oldest, &err));
    CHECK(limits.counts(limits.key_of(ip_of(ipv4("203.0.113.9")))).hellos == 6);
    CHECK(r.d.hellos() == 6);
}
