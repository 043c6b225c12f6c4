// metrics_schema.cc: names of the results, reasons and states, in enum order, and the
// lookups from the strings connection.cc and the metrics text use.
#include "metrics_schema.h"

namespace sniproxy {

namespace {

    constexpr std::array<std::string_view, conn_result_count> result_names = {
        "ok",
        "no-route",
        "bad-hello",
        "bad-sni",
        "timeout",
        "client-closed",
        "client-error",
        "client-reset",
        "backend-refused",
        "backend-missing",
        "backend-busy",
        "backend-error",
        "backend-reset",
        "internal-error",
        "grace-expired",
        "idle-timeout",
        "bad-proxy",
        "denied",
        "limit-source",
        "limit-rate",
        "limit-hellos",
        "shed",
        "other",
    };

    constexpr std::array<std::string_view, reject_reason_count> reason_names = {
        "denied",
        "limit-source",
        "limit-rate",
        "limit-hellos",
        "shed",
        "other",
    };

    constexpr std::array<std::string_view, worker_state_count> state_names = {
        "free",
        "starting",
        "ready",
        "draining",
    };

    template <typename Enum, std::size_t N>
    std::optional<Enum> find_name(
        const std::array<std::string_view, N>& names, std::string_view name)
    {
        for (std::size_t i = 0; i < N; ++i)
            if (names[i] == name)
                return static_cast<Enum>(i);
        return std::nullopt;
    }

} // namespace

std::string_view conn_result_name(ConnResult r)
{
    const auto i = static_cast<std::size_t>(r);
    return i < result_names.size() ? result_names[i] : result_names.back();
}

ConnResult conn_result_from_name(std::string_view name)
{
    return find_name<ConnResult>(result_names, name).value_or(ConnResult::other);
}

std::optional<RejectReason> reject_reason_of(ConnResult r)
{
    switch (r) {
    case ConnResult::denied:
        return RejectReason::denied;
    case ConnResult::limit_source:
        return RejectReason::limit_source;
    case ConnResult::limit_rate:
        return RejectReason::limit_rate;
    case ConnResult::limit_hellos:
        return RejectReason::limit_hellos;
    case ConnResult::shed:
        return RejectReason::shed;
    default:
        return std::nullopt;
    }
}

ConnResult conn_result_of(RejectReason r)
{
    for (std::size_t i = 0; i < conn_result_count; ++i)
        if (reject_reason_of(static_cast<ConnResult>(i)) == r)
            return static_cast<ConnResult>(i);
    return ConnResult::other;
}

std::string_view reject_reason_name(RejectReason r)
{
    const auto i = static_cast<std::size_t>(r);
    return i < reason_names.size() ? reason_names[i] : reason_names.back();
}

std::optional<RejectReason> reject_reason_from_name(std::string_view name)
{
    return find_name<RejectReason>(reason_names, name);
}

std::string_view worker_state_name(WorkerState s)
{
    const auto i = static_cast<std::size_t>(s);
    return i < state_names.size() ? state_names[i] : state_names.front();
}

std::optional<WorkerState> worker_state_from_name(std::string_view name)
{
    return find_name<WorkerState>(state_names, name);
}

std::size_t hello_bucket(double seconds)
{
    std::size_t i = 0;
    // Written so that NaN compares false everywhere and lands in +Inf.
    while (i < hello_bucket_bounds.size() && !(seconds <= hello_bucket_bounds[i]))
        ++i;
    return i;
}

} // namespace sniproxy
