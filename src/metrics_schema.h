// metrics_schema.h: the fixed vocabulary of the metrics. Connection results, refusal
// reasons, worker states and the hello-duration buckets are closed lists, so every counter
// lives at a fixed place in shared memory and no client input can add a label value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sniproxy {

// How a connection ended: the log's result= values. A name the list does not know is
// counted as `other`, so a new result in connection.cc shows up instead of vanishing.
enum class ConnResult : std::uint8_t {
    ok,
    no_route,
    bad_hello,
    bad_sni,
    timeout,
    client_closed,
    client_error,
    client_reset,
    backend_refused,
    backend_missing,
    backend_busy,
    backend_error,
    backend_reset,
    internal_error,
    grace_expired,
    idle_timeout,
    bad_proxy,
    denied,
    limit_source,
    limit_rate,
    limit_hellos,
    shed,
    other,
};
inline constexpr std::size_t conn_result_count = static_cast<std::size_t>(ConnResult::other) + 1;

// Why a connection was refused: sniproxyd_rejected_total{reason}.
enum class RejectReason : std::uint8_t {
    denied,
    limit_source,
    limit_rate,
    limit_hellos,
    shed,
    other,
};
inline constexpr std::size_t reject_reason_count
    = static_cast<std::size_t>(RejectReason::other) + 1;

// What the parent says a worker is doing: sniproxyd_workers{generation,state}.
// `free` marks an unused slot and is never shown.
enum class WorkerState : std::uint8_t { free, starting, ready, draining };
inline constexpr std::size_t worker_state_count = 4;

std::string_view conn_result_name(ConnResult r); // "no-route"
ConnResult conn_result_from_name(std::string_view name); // unknown: ConnResult::other
// The refusal a result stands for (denied, limit-*, shed), if it is one.
std::optional<RejectReason> reject_reason_of(ConnResult r);
// The result a refusal is logged with (the inverse of reject_reason_of; other for other).
ConnResult conn_result_of(RejectReason r);

std::string_view reject_reason_name(RejectReason r);
std::optional<RejectReason> reject_reason_from_name(std::string_view name);

std::string_view worker_state_name(WorkerState s);
std::optional<WorkerState> worker_state_from_name(std::string_view name);

// Upper bounds (le) of sniproxyd_hello_duration_seconds; +Inf follows the last.
inline constexpr std::array<double, 13> hello_bucket_bounds
    = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
inline constexpr std::size_t hello_bucket_count = hello_bucket_bounds.size() + 1;
// The first bucket whose bound is >= seconds; hello_bucket_bounds.size() for +Inf (and NaN).
std::size_t hello_bucket(double seconds);

} // namespace sniproxy
