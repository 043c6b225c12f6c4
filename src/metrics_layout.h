// metrics_layout.h: the layout of the shared metrics region (private to metrics_*.cc).
//
// One memfd, created by the parent before it starts anything and inherited by every child:
//
//   [ParentArea]   written only by the parent: start time, build version, its refusals,
//                  and for each slot the worker's state, generation and pid
//   [RetiredArea]  written only by the parent: the counts of workers that have exited,
//                  folded in when the parent reaps them (under the seqlock `seq`)
//   [WorkerArea] x max_slots
//                  each written only by the worker that holds the slot; a worker maps
//                  only its own area (areas are 64 KiB aligned), so it cannot touch the
//                  counts of another
//
// Every counter has a single writer, which adds with a relaxed load and store (no locked
// instruction, no system call); readers load relaxed, so a 64-bit value is never torn.
// Route names are written before the count that publishes them (release/acquire) and never
// change afterwards. Readers treat all of it as untrusted: a jailed worker may have written
// anything into its own area.
#pragma once

#include "metrics_schema.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sniproxy::metrics_layout {

using Counter = std::uint64_t; // only ever accessed through std::atomic_ref
static_assert(std::atomic_ref<Counter>::is_always_lock_free);

inline std::uint64_t load(const Counter& c, std::memory_order o = std::memory_order_relaxed)
{
    return std::atomic_ref<Counter>(const_cast<Counter&>(c)).load(o);
}
inline void store(Counter& c, std::uint64_t v, std::memory_order o = std::memory_order_relaxed)
{
    std::atomic_ref<Counter>(c).store(v, o);
}
// Single writer: a plain read-modify-write, atomic only so that readers never see it torn.
inline void add(Counter& c, std::uint64_t n)
{
    store(c, load(c) + n);
}

inline constexpr std::uint64_t magic = 0x31'74'65'6d'70'69'6e'73; // "snipmet1"
inline constexpr std::size_t max_slots = 256;
inline constexpr std::size_t routes_per_slot = 128;
inline constexpr std::size_t retired_routes = 1024;
inline constexpr std::size_t route_name_size = 256; // a hostname (253) and its NUL fit
inline constexpr std::size_t version_size = 64;

struct RouteEntry {
    char name[route_name_size]; // NUL-padded
    Counter results[conn_result_count];
    Counter up;
    Counter down;
};

// What each writer keeps besides its route table.
struct Totals {
    Counter route_count; // entries of the route table published so far
    Counter route_overflow; // connections counted under "-" because the table was full
    Counter rejected[reject_reason_count];
    Counter hello[hello_bucket_count]; // not cumulative; the last is +Inf
    Counter hello_count;
    Counter hello_sum_ns;
};

struct WorkerArea {
    Counter active; // connections open now
    Counter open_fds; // the worker's own count plus one; 0: not published
    Totals totals;
    RouteEntry routes[routes_per_slot];
};

struct SlotInfo {
    Counter state; // WorkerState
    Counter generation;
    Counter pid;
    Counter unused;
};

// Established connections moved into a generation (rollover, upgrade), by generation: the
// parent's ring of the last moved_generations generations (an older one's entry is reused).
inline constexpr std::size_t moved_generations = 16;
struct MovedEntry {
    Counter generation; // 0: unused
    Counter count;
};

struct ParentArea {
    Counter magic;
    Counter seq; // odd while the parent folds a slot into RetiredArea
    Counter start_time_ns; // CLOCK_REALTIME
    Counter open_fds; // the parent's count plus one; 0: not published
    Counter unslotted; // workers started while every slot was taken
    Counter rejected[reject_reason_count]; // refused by the parent before any worker saw them
    MovedEntry moved[moved_generations];
    char version[version_size];
    SlotInfo slots[max_slots];
};

struct RetiredArea {
    Totals totals;
    RouteEntry routes[retired_routes];
};

// A stored route name as a label value: hosts-directory names only (lowercase hostnames,
// "*." wildcards, _default, _nosni, hashed names in URL-safe base64, "-"); anything else,
// as a compromised worker might write, is "-". The reader and the parent's fold agree, so a
// count never moves between labels.
inline std::string_view route_label(const char (&name)[route_name_size])
{
    const std::size_t len = strnlen(name, route_name_size);
    if (len == 0 || len == route_name_size)
        return "-";
    for (std::size_t i = 0; i < len; ++i) {
        const char c = name[i];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '.' || c == '-' || c == '_' || c == '*';
        if (!ok)
            return "-";
    }
    return { name, len };
}

inline constexpr std::size_t area_align = 65536; // the largest page size Linux uses
constexpr std::size_t round_up(std::size_t n)
{
    return (n + area_align - 1) / area_align * area_align;
}
inline constexpr std::size_t retired_offset = round_up(sizeof(ParentArea));
inline constexpr std::size_t slots_offset = retired_offset + round_up(sizeof(RetiredArea));
inline constexpr std::size_t slot_stride = round_up(sizeof(WorkerArea));
inline constexpr std::size_t region_size = slots_offset + max_slots * slot_stride;
static_assert(slot_stride == area_align, "a worker area fits one 64 KiB unit");

} // namespace sniproxy::metrics_layout
