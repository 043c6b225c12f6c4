// metrics_read.cc: summing the metrics region into a Snapshot for a scrape. Everything in
// a worker's area may have been written by a compromised worker, so names are checked
// against the characters a hosts-directory name can have and every count is clamped to its
// table; the worst such a worker can do is report wrong numbers.
#include "metrics_layout.h"
#include "metrics_store.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

namespace sniproxy {

using namespace metrics_layout;

namespace {

    std::string printable_version(const char (&v)[version_size])
    {
        std::string out;
        for (std::size_t i = 0; i < version_size && v[i] != '\0'; ++i)
            out += (v[i] > 0x20 && v[i] < 0x7f) ? v[i] : '?';
        return out;
    }

    class Summer {
    public:
        explicit Summer(Snapshot& s)
            : snap_(s)
        {
        }

        void totals(const Totals& t)
        {
            snap_.route_overflow += load(t.route_overflow);
            for (std::size_t i = 0; i < reject_reason_count; ++i)
                snap_.rejected[i] += load(t.rejected[i]);
            for (std::size_t i = 0; i < hello_bucket_count; ++i)
                snap_.hello_buckets[i] += load(t.hello[i]);
            snap_.hello_count += load(t.hello_count);
            hello_sum_ns_ += load(t.hello_sum_ns);
        }

        // Returns the connections the table counts.
        std::uint64_t routes(const Totals& t, const RouteEntry* entries, std::size_t capacity)
        {
            const std::size_t n
                = std::min<std::size_t>(load(t.route_count, std::memory_order_acquire), capacity);
            std::uint64_t connections = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const RouteEntry& e = entries[i];
                // Copied before it is checked: the worker could rewrite it in between.
                char name[route_name_size];
                std::memcpy(name, e.name, sizeof name);
                RouteTotals& r = route(std::string(route_label(name)));
                for (std::size_t k = 0; k < conn_result_count; ++k) {
                    const std::uint64_t v = load(e.results[k]);
                    r.results[k] += v;
                    connections += v;
                }
                r.up += load(e.up);
                r.down += load(e.down);
            }
            return connections;
        }

        RouteTotals& route(const std::string& name)
        {
            RouteTotals& r = routes_[name];
            r.route = name;
            return r;
        }

        void finish()
        {
            snap_.hello_sum_seconds = static_cast<double>(hello_sum_ns_) / 1e9;
            for (auto& [name, totals] : routes_)
                snap_.routes.push_back(std::move(totals));
        }

    private:
        Snapshot& snap_;
        std::map<std::string, RouteTotals> routes_;
        std::uint64_t hello_sum_ns_ = 0;
    };

    Snapshot collect(const ParentArea& parent, const RetiredArea& retired, const char* base)
    {
        Snapshot snap;
        snap.start_time_seconds = static_cast<double>(load(parent.start_time_ns)) / 1e9;
        snap.version = printable_version(parent.version);
        snap.unslotted_workers = load(parent.unslotted);
        if (const std::uint64_t fds = load(parent.open_fds))
            snap.parent_open_fds = static_cast<std::int64_t>(fds - 1);

        for (const MovedEntry& e : parent.moved) {
            const std::uint64_t gen = load(e.generation), n = load(e.count);
            if (gen != 0 && gen <= UINT32_MAX && n != 0)
                snap.moved.emplace_back(static_cast<unsigned>(gen), n);
        }
        std::sort(snap.moved.begin(), snap.moved.end());
        Summer sum(snap);
        // A connection the parent refused is one that ended, before any route: "-".
        for (std::size_t i = 0; i < reject_reason_count; ++i) {
            const std::uint64_t n = load(parent.rejected[i]);
            snap.rejected[i] += n;
            if (n)
                sum.route("-")
                    .results[static_cast<std::size_t>(conn_result_of(static_cast<RejectReason>(i)))]
                    += n;
        }
        sum.totals(retired.totals);
        sum.routes(retired.totals, retired.routes, retired_routes);

        for (std::size_t slot = 0; slot < max_slots; ++slot) {
            const SlotInfo& info = parent.slots[slot];
            const std::uint64_t state = load(info.state, std::memory_order_acquire);
            if (state == static_cast<Counter>(WorkerState::free) || state >= worker_state_count)
                continue;
            const auto* area
                = reinterpret_cast<const WorkerArea*>(base + slots_offset + slot * slot_stride);
            WorkerTotals w;
            w.slot = static_cast<unsigned>(slot);
            w.pid = static_cast<pid_t>(load(info.pid));
            w.generation = static_cast<unsigned>(load(info.generation));
            w.state = static_cast<WorkerState>(state);
            w.active = load(area->active);
            if (const std::uint64_t fds = load(area->open_fds))
                w.open_fds = static_cast<std::int64_t>(fds - 1);
            sum.totals(area->totals);
            w.handled = sum.routes(area->totals, area->routes, routes_per_slot);
            snap.workers.push_back(w);
        }
        sum.finish();
        return snap;
    }

} // namespace

Snapshot MetricsStore::read_all() const
{
    if (!base_)
        return {};
    const char* base = static_cast<const char*>(base_);
    // The parent holds seq odd only while it folds one slot (microseconds). A parent
    // stopped in the middle must not hang the reader: after 50 ms it takes the sum as it
    // is, at worst off by that one slot.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    for (unsigned attempt = 1;; ++attempt) {
        const std::uint64_t before = load(parent_->seq, std::memory_order_acquire);
        if ((before & 1) == 0) {
            Snapshot snap = collect(*parent_, *retired_, base);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (load(parent_->seq) == before)
                return snap;
        }
        if (attempt % 64 == 0) {
            if (std::chrono::steady_clock::now() > deadline)
                break;
            sched_yield();
        }
    }
    return collect(*parent_, *retired_, base);
}

} // namespace sniproxy
