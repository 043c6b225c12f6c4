// accept_pacer_test.cc: the accept budget: one per readiness while connections come apart,
// what is queued while they come close together or the parent is falling behind.
#include "accept_pacer.h"
#include "catch.h"

using namespace sniproxy;
using Probe = AcceptPacer::Probe;

namespace {
// One readiness as the parent handles it: the probe when the pacer wants one (answered with
// `queued`), then as many accepts as the budget allows, the last one failing with EAGAIN
// when the queue ran out first. Returns how many were accepted; *probed says whether asked.
std::size_t ready(AcceptPacer& p, std::int64_t now, std::size_t queued, bool* probed = nullptr)
{
    const bool probe = p.wants_probe(now);
    if (probed)
        *probed = probe;
    const std::size_t budget = p.budget(probe ? Probe::answered : Probe::skipped, queued);
    const std::size_t taken = std::min(budget, queued);
    p.finished(taken, taken < budget);
    return taken;
}
} // namespace

TEST_CASE("connections coming apart: one accept per readiness, the queue seldom asked")
{
    AcceptPacer p;
    std::int64_t now = 1'000'000'000;
    int probes = 0;
    for (int i = 0; i < 100; i++, now += 1'000'000) { // 1,000 a second, one queued each time
        bool probed = false;
        CHECK(ready(p, now, 1, &probed) == 1);
        probes += probed;
    }
    // Each readiness took its one without EAGAIN (more might have waited): asked now and
    // then to make sure, not every time.
    CHECK(probes > 0);
    CHECK(probes <= 100 / static_cast<int>(AcceptPacer::calm_readinesses) + 1);
}

TEST_CASE("readiness close together: the queue is asked and taken as a whole, up to a limit")
{
    AcceptPacer p;
    std::int64_t now = 1'000'000'000;
    CHECK_FALSE(p.wants_probe(now)); // the first readiness: nothing to compare with
    p.budget(Probe::skipped, 0);
    p.finished(1, true);
    now += AcceptPacer::busy_gap_ns - 1;
    CHECK(p.wants_probe(now));
    CHECK(p.budget(Probe::answered, 5) == 5);
    CHECK(p.budget(Probe::answered, 1000) == AcceptPacer::max_batch);
    CHECK(p.budget(Probe::answered, 0) == 0); // someone else took them
    p.finished(0, false);
    now += AcceptPacer::busy_gap_ns; // a pause: back to one at a time
    CHECK_FALSE(p.wants_probe(now));
}

TEST_CASE("a parent whose loop turns outlast the gap still takes its queue whole")
{
    // Every turn takes 1 ms in other callbacks, and 20 connections arrive per turn: each
    // readiness looks "apart" by time, but a full budget without EAGAIN means more wait.
    AcceptPacer p;
    std::int64_t now = 1'000'000'000;
    std::size_t queued = 20;
    CHECK(ready(p, now, queued) == 1); // nothing to go by yet
    queued += 20 - 1;
    std::size_t taken = 0;
    for (int turn = 0; turn < 10; turn++) {
        now += 1'000'000;
        bool probed = false;
        taken = ready(p, now, queued, &probed);
        CHECK(probed);
        queued += 20 - taken;
    }
    CHECK(taken >= 20); // each turn takes what arrived: the backlog does not grow
    CHECK(queued <= 20);
}

TEST_CASE("a falling-behind parent is noticed within calm_readinesses after a calm probe")
{
    AcceptPacer p;
    std::int64_t now = 1'000'000'000;
    ready(p, now, 1);
    now += 1'000'000;
    bool probed = false;
    ready(p, now, 1, &probed); // the one-accept readiness before made it ask: one was queued
    REQUIRE(probed);
    unsigned turns = 0;
    for (probed = false; !probed && turns < 100; turns++) {
        now += 1'000'000;
        ready(p, now, 30, &probed); // now the queue is deep, turn after turn
    }
    CHECK(turns <= AcceptPacer::calm_readinesses + 1);
}

TEST_CASE("a socket that cannot tell its queue is accepted until EAGAIN")
{
    AcceptPacer p;
    CHECK(p.budget(Probe::failed, 0) == AcceptPacer::max_batch);
}
