// shed.h: the "under pressure" decision of sniproxyd(8), always on: which connections still
// in their hello phase to close when the daemon nears its capacity. Pure.
#pragma once

#include "source_limits.h"

#include <cstddef>
#include <span>
#include <vector>

namespace sniproxy {

struct HelloPhase {
    SourceKey source; // key_of() the source; `counted` does not matter here
    SourceLimits::Clock::time_point accepted;
};

// Pressure starts when the connections still in their hello phase reach 90 % of the capacity
// (DESIGN.md: "when the connections still in the hello phase near the capacity"); shedding
// then brings them down to 80 %, so that one burst of shedding makes room for many new
// clients instead of one shed per accept. Established connections neither count nor are
// shed: they are clients being served.
inline constexpr unsigned shed_start_percent = 90;
inline constexpr unsigned shed_stop_percent = 80;

bool under_pressure(std::size_t hellos, std::size_t capacity);

// The indexes into `hellos` (every hello-phase connection not shed yet) to close now, empty
// below the pressure. Always the connection
// of the source holding the most hello-phase connections, the oldest of that source; on a
// tie between sources, the one whose oldest is older. A real client, one or a few hellos
// from its address and only just accepted, is shed last.
std::vector<std::size_t> choose_shed(std::span<const HelloPhase> hellos, std::size_t capacity);

} // namespace sniproxy
