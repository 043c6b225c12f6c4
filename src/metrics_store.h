// metrics_store.h: the counters behind /metrics, in one shared memory region (see
// metrics_layout.h) that outlives every worker, so totals survive SIGHUP and a dead
// worker's counts are kept.
//
// Roles:
//   parent   MetricsStore::create before forking anything; passes fd() to every child
//            it spawns; claim_slot before spawning a worker (the index goes to the
//            worker), set_worker/set_state as it learns about it, release_slot once it
//            has reaped it (its counts are folded into the retired totals, the slot is
//            reused); count_rejected for refusals it decides itself.
//   worker   MetricsSlot::attach(fd, index) before it is jailed, then closes fd; calls
//            connection_done once per connection and active(+1/-1).
//   server   MetricsStore::open_readonly(fd) before it is jailed, on the descriptor the
//            parent made with readonly_fd; read_all per scrape.
//
// What a compromised process can do: a worker writes only its own slot (it maps nothing
// else, and closes the descriptor before it is jailed), though mremap could grow its
// mapping over the slots after its own: it could falsify counts, never reach the parent's
// areas (they come first) or harm a reader, which checks every name and clamps every
// count. The server's mapping is read-only for good.
//
// Slots: max_slots (256) at once. A worker started while all are taken runs without one
// (its calls do nothing) and is counted in Snapshot::unslotted_workers. Each slot names at
// most 128 routes; a 129th name is counted under "-" (Snapshot::route_overflow). The
// retired totals hold 1024 names, then fold into "-" the same way.
#pragma once

#include "fd.h"
#include "metrics_schema.h"

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sniproxy {

namespace metrics_layout {
    struct ParentArea;
    struct RetiredArea;
    struct WorkerArea;
    struct RouteEntry;
}

struct RouteTotals {
    std::string route; // a hosts-directory name, or "-"
    std::array<std::uint64_t, conn_result_count> results {};
    std::uint64_t up = 0; // client to backend, bytes
    std::uint64_t down = 0;
};

struct WorkerTotals {
    unsigned slot = 0;
    pid_t pid = 0;
    unsigned generation = 0;
    WorkerState state = WorkerState::starting;
    std::uint64_t active = 0;
    std::uint64_t handled = 0; // connections ended in this worker
    std::int64_t open_fds = -1; // -1: not published
};

// Everything a scrape shows, summed over the parent, the retired totals and live slots.
struct Snapshot {
    double start_time_seconds = 0; // Unix time of the parent's start
    std::string version;
    std::vector<RouteTotals> routes; // sorted by name, each name once
    std::array<std::uint64_t, reject_reason_count> rejected {};
    std::array<std::uint64_t, hello_bucket_count> hello_buckets {}; // not cumulative
    std::uint64_t hello_count = 0;
    double hello_sum_seconds = 0;
    std::vector<WorkerTotals> workers; // live slots, by slot index
    std::uint64_t route_overflow = 0;
    std::uint64_t unslotted_workers = 0;
    std::int64_t parent_open_fds = -1; // -1: not published
    // Established connections moved into each generation (the last 16 that took some).
    std::vector<std::pair<unsigned, std::uint64_t>> moved; // by generation, ascending
};

class MetricsStore {
public:
    static constexpr unsigned max_slots = 256;

    MetricsStore() = default;
    ~MetricsStore();
    MetricsStore(const MetricsStore&) = delete;
    MetricsStore& operator=(const MetricsStore&) = delete;

    // Parent: a new zeroed region (memfd, size sealed) stamped with the start time and
    // version.
    bool create(std::string_view version, std::string* err);
    // The metrics server: the region the parent created, mapped read-only.
    bool open_readonly(int fd, std::string* err);
    // The region's descriptor, for a worker to inherit; -1 after open_readonly.
    int fd() const { return fd_.get(); }
    // A read-only descriptor of the region, for the metrics server: a mapping made from it
    // can never be made writable (mprotect fails), whatever the server runs.
    bool readonly_fd(UniqueFd* out, std::string* err) const;

    // Parent only. A free slot marked `starting` for `generation`, or -1 if none is free
    // (counted as an unslotted worker).
    int claim_slot(unsigned generation);
    void set_worker(int slot, pid_t pid);
    void set_state(int slot, WorkerState state);
    // The slot's worker has been reaped: its counts join the retired totals and the slot
    // becomes free, atomically for readers. Ignores -1.
    void release_slot(int slot);
    void count_rejected(RejectReason reason);
    // `n` established connections moved into workers of `generation`.
    void count_moved(unsigned generation, std::uint64_t n);
    void set_parent_open_fds(int n);

    // A consistent sum (retried while the parent folds a slot). Never blocks.
    Snapshot read_all() const;

private:
    void fold_route(const metrics_layout::RouteEntry& from);

    UniqueFd fd_;
    void* base_ = nullptr;
    metrics_layout::ParentArea* parent_ = nullptr;
    metrics_layout::RetiredArea* retired_ = nullptr;
    bool writable_ = false;
    std::unordered_map<std::string, std::size_t> retired_index_; // parent: name -> entry
};

// A worker's writer: a view of its own slot only. Default-constructed (or after a failed
// attach) it is detached and every call does nothing.
class MetricsSlot {
public:
    MetricsSlot() = default;
    ~MetricsSlot();
    MetricsSlot(const MetricsSlot&) = delete;
    MetricsSlot& operator=(const MetricsSlot&) = delete;

    // Maps slot `index` of the region behind `fd` (the caller closes fd afterwards).
    bool attach(int fd, int index, std::string* err);
    bool attached() const { return area_ != nullptr; }

    // One finished connection. `route` is the route's name, or "-" before one was chosen;
    // `result` is the log's result= word; up/down are the bytes relayed (no PROXY header);
    // hello_seconds is accept to route decided, negative when no route was decided.
    void connection_done(std::string_view route, std::string_view result, std::uint64_t up,
        std::uint64_t down, double hello_seconds);
    void connection_done(std::string_view route, ConnResult result, std::uint64_t up,
        std::uint64_t down, double hello_seconds);
    void active(int delta); // +1 when a connection starts, -1 when it ends
    void set_open_fds(int n);

private:
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const
        {
            return std::hash<std::string_view>()(s);
        }
    };
    metrics_layout::RouteEntry& route_entry(std::string_view route);

    metrics_layout::WorkerArea* area_ = nullptr;
    std::unordered_map<std::string, std::size_t, Hash, std::equal_to<>> index_;
};

// Counts this process's open descriptors in /proc/self/fd (the parent, which is not
// jailed), or -1 if it cannot.
int count_open_fds();

} // namespace sniproxy
