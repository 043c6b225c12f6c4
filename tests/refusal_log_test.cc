// refusal_log_test.cc: a flood of refusals gives a bounded number of log lines.
#include "catch.h"
#include "refusal_log.h"

using namespace sniproxy;
using namespace std::chrono_literals;
using Clock = RefusalLog::Clock;

TEST_CASE("at most N lines a second, then the count of those left out")
{
    RefusalLog log(3);
    const Clock::time_point t0 = Clock::time_point(50s);
    int logged = 0;
    for (int i = 0; i < 1237; i++) {
        const auto p = log.refusal(t0 + std::chrono::microseconds(i));
        CHECK(p.suppressed == 0);
        logged += p.log;
    }
    CHECK(logged == 3);
    CHECK(log.expire(t0 + 999ms) == 0);
    // The next second: the count first, then lines again.
    const auto p = log.refusal(t0 + 1s);
    CHECK(p.suppressed == 1234);
    CHECK(p.log);
    CHECK(suppressed_message(p.suppressed) == "1234 refusal log lines suppressed");
    CHECK(suppressed_message(1) == "1 refusal log line suppressed");
}

TEST_CASE("the count is told by the timer when the flood stops")
{
    RefusalLog log(1);
    const Clock::time_point t0 = Clock::time_point(50s);
    CHECK(log.refusal(t0).log);
    CHECK(!log.refusal(t0 + 1ms).log);
    CHECK(!log.refusal(t0 + 2ms).log);
    CHECK(log.expire(t0 + 500ms) == 0);
    CHECK(log.expire(t0 + 1500ms) == 2);
    CHECK(log.expire(t0 + 5s) == 0); // told once
    const auto p = log.refusal(t0 + 6s);
    CHECK(p.log);
    CHECK(p.suppressed == 0);
    CHECK(log.refusal(t0 + 8s).suppressed == 0); // nothing was left out since
}

TEST_CASE("a steady trickle below the limit is never suppressed")
{
    RefusalLog log(10);
    const Clock::time_point t0 = Clock::time_point(50s);
    for (int i = 0; i < 1000; i++) {
        const auto p = log.refusal(t0 + std::chrono::milliseconds(100 * i));
        REQUIRE(p.log);
        REQUIRE(p.suppressed == 0);
    }
}
