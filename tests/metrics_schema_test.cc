// metrics_schema_test.cc: the metrics vocabulary: result and reason names round-trip,
// unknown results are not lost, and hello durations land in the right bucket.
#include "catch.h"
#include "metrics_schema.h"

#include <cmath>

using namespace sniproxy;

TEST_CASE("every result name maps back to its result; unknown ones count as other")
{
    for (std::size_t i = 0; i < conn_result_count; ++i) {
        const auto r = static_cast<ConnResult>(i);
        CHECK(conn_result_from_name(conn_result_name(r)) == r);
    }
    CHECK(conn_result_name(ConnResult::backend_refused) == "backend-refused");
    CHECK(conn_result_from_name("no-route") == ConnResult::no_route);
    CHECK(conn_result_from_name("something-new") == ConnResult::other);
    CHECK(conn_result_from_name("") == ConnResult::other);
}

TEST_CASE("refusal results carry their reason, other results none")
{
    CHECK(reject_reason_of(ConnResult::denied) == RejectReason::denied);
    CHECK(reject_reason_of(ConnResult::limit_rate) == RejectReason::limit_rate);
    CHECK(reject_reason_of(ConnResult::shed) == RejectReason::shed);
    CHECK_FALSE(reject_reason_of(ConnResult::ok));
    CHECK_FALSE(reject_reason_of(ConnResult::no_route));
    for (std::size_t i = 0; i < reject_reason_count; ++i) {
        const auto r = static_cast<RejectReason>(i);
        CHECK(reject_reason_from_name(reject_reason_name(r)) == r);
    }
    CHECK_FALSE(reject_reason_from_name("ok"));
    CHECK(conn_result_of(RejectReason::limit_source) == ConnResult::limit_source);
    CHECK(conn_result_of(RejectReason::other) == ConnResult::other);
    CHECK(worker_state_from_name("draining") == WorkerState::draining);
    CHECK(worker_state_name(WorkerState::ready) == "ready");
}

TEST_CASE("hello durations fall in the first bucket whose bound holds them")
{
    CHECK(hello_bucket(0) == 0);
    CHECK(hello_bucket(0.001) == 0); // le is inclusive
    CHECK(hello_bucket(0.0011) == 1);
    CHECK(hello_bucket(0.3) == 8); // le=0.5
    CHECK(hello_bucket(10) == 12);
    CHECK(hello_bucket(10.5) == 13); // +Inf
    CHECK(hello_bucket(std::nan("")) == 13);
}
