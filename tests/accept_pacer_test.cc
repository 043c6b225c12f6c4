// accept_pacer_test.cc: the accept budget: one per readiness while connections come apart,
// what is queued while they come close together.
#include "accept_pacer.h"
#include "catch.h"

using namespace sniproxy;
using Probe = AcceptPacer::Probe;

TEST_CASE("connections coming apart: one accept per readiness, the queue never asked")
{
    AcceptPacer p;
    std::int64_t now = 1'000'000'000;
    for (int i = 0; i < 20; i++, now += 1'000'000) // 1,000 a second
        CHECK_FALSE(p.wants_probe(now));
    CHECK(AcceptPacer::budget(Probe::skipped, 0) == 1);
}

TEST_CASE("readiness close together: the queue is asked and taken as a whole, up to a limit")
{
    AcceptPacer p;
    std::int64_t now = 1'000'000'000;
    CHECK_FALSE(p.wants_probe(now)); // the first readiness: nothing to compare with
    now += AcceptPacer::busy_gap_ns - 1;
    CHECK(p.wants_probe(now));
    CHECK(AcceptPacer::budget(Probe::answered, 5) == 5);
    CHECK(AcceptPacer::budget(Probe::answered, 1000) == AcceptPacer::max_batch);
    CHECK(AcceptPacer::budget(Probe::answered, 0) == 0); // someone else took them
    now += AcceptPacer::busy_gap_ns; // a pause: back to one at a time
    CHECK_FALSE(p.wants_probe(now));
}

TEST_CASE("a socket that cannot tell its queue is accepted until EAGAIN")
{
    CHECK(AcceptPacer::budget(Probe::failed, 0) == AcceptPacer::max_batch);
}
