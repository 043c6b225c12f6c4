// shed.cc: choosing whom to shed: group the hello-phase connections by source, oldest first
// in each group, then take repeatedly from the group that holds the most.
#include "shed.h"

#include <algorithm>
#include <numeric>
#include <queue>
#include <tuple>

namespace sniproxy {

bool under_pressure(std::size_t hellos, std::size_t capacity)
{
    return capacity > 0 && hellos * 100 >= capacity * shed_start_percent;
}

std::vector<std::size_t> choose_shed(std::span<const HelloPhase> hellos, std::size_t capacity)
{
    if (!under_pressure(hellos.size(), capacity))
        return {};
    const std::size_t target = capacity * shed_stop_percent / 100;
    const std::size_t count = hellos.size() - std::min(hellos.size(), target);

    // By source, then age: each source's connections form one run, oldest first.
    std::vector<std::size_t> order(hellos.size());
    std::iota(order.begin(), order.end(), 0);
    const auto source_less = [](const SourceKey& a, const SourceKey& b) {
        return std::tie(a.address, a.prefix) < std::tie(b.address, b.prefix);
    };
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const HelloPhase &x = hellos[a], &y = hellos[b];
        if (!x.source.same_source(y.source))
            return source_less(x.source, y.source);
        return x.accepted < y.accepted;
    });
    struct Run {
        std::size_t next, end; // positions in `order`
    };
    const auto worse = [&](const Run& a, const Run& b) { // true: b is shed before a
        const std::size_t left_a = a.end - a.next, left_b = b.end - b.next;
        if (left_a != left_b)
            return left_a < left_b;
        return hellos[order[b.next]].accepted < hellos[order[a.next]].accepted;
    };
    std::priority_queue<Run, std::vector<Run>, decltype(worse)> runs(worse);
    for (std::size_t start = 0; start < order.size();) {
        std::size_t end = start + 1;
        while (end < order.size()
            && hellos[order[end]].source.same_source(hellos[order[start]].source))
            end++;
        runs.push({ start, end });
        start = end;
    }
    std::vector<std::size_t> shed;
    shed.reserve(count);
    while (shed.size() < count) {
        Run r = runs.top();
        runs.pop();
        shed.push_back(order[r.next++]);
        if (r.next < r.end)
            runs.push(r);
    }
    return shed;
}

} // namespace sniproxy
