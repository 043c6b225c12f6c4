// accept_pacer_test.cc: the accept budget: one per readiness while batches are small, what is
// queued while the queue is deep.
#include "accept_pacer.h"
#include "catch.h"

using namespace sniproxy;
using Probe = AcceptPacer::Probe;

TEST_CASE("small batches: one accept per readiness, the queue asked once in a while")
{
    AcceptPacer p;
    int probes = 0;
    for (int i = 0; i < 80; i++) {
        if (p.wants_probe()) {
            probes++;
            CHECK(p.budget(Probe::answered, 1) == 1);
        } else {
            CHECK(p.budget(Probe::skipped, 0) == 1);
        }
    }
    CHECK(probes == 80 / AcceptPacer::sample_every);
}

TEST_CASE("a deep queue: asked every time and taken as a whole, up to the batch limit")
{
    AcceptPacer p;
    while (!p.wants_probe())
        CHECK(p.budget(Probe::skipped, 0) == 1);
    CHECK(p.budget(Probe::answered, 5) == 5);
    REQUIRE(p.wants_probe());
    CHECK(p.budget(Probe::answered, 1000) == AcceptPacer::max_batch);
    REQUIRE(p.wants_probe());
    CHECK(p.budget(Probe::answered, 0) == 0); // someone else took them: nothing to accept
    CHECK_FALSE(p.wants_probe()); // back to small batches
}

TEST_CASE("a socket that cannot tell its queue is accepted until EAGAIN")
{
    AcceptPacer p;
    while (!p.wants_probe())
        p.budget(Probe::skipped, 0);
    CHECK(p.budget(Probe::failed, 0) == AcceptPacer::max_batch);
    CHECK_FALSE(p.wants_probe());
}
