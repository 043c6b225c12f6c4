// metrics_slot.cc: a worker's side of the metrics region. Counting a connection costs a
// hash lookup of the route name and a few relaxed stores into the worker's own slot: no
// system call, no lock, no locked instruction.
#include "metrics_layout.h"
#include "metrics_store.h"

#include "log.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>

namespace sniproxy {

using namespace metrics_layout;

MetricsSlot::~MetricsSlot()
{
    if (area_)
        munmap(area_, slot_stride);
}

bool MetricsSlot::attach(int fd, int index, std::string* err)
{
    if (index < 0 || static_cast<std::size_t>(index) >= max_slots) {
        *err = "metrics: slot " + std::to_string(index) + " does not exist";
        return false;
    }
    struct stat st { };
    if (fstat(fd, &st) != 0) {
        *err = errno_message("metrics: fstat of the shared region", errno);
        return false;
    }
    if (static_cast<std::size_t>(st.st_size) != region_size) {
        *err = "metrics: descriptor " + std::to_string(fd) + " is not the metrics region";
        return false;
    }
    // Only this worker's own area: the rest of the region is out of its reach.
    const auto offset
        = static_cast<off_t>(slots_offset + static_cast<std::size_t>(index) * slot_stride);
    void* p = mmap(nullptr, slot_stride, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    if (p == MAP_FAILED) {
        *err = errno_message("metrics: mmap of the worker's slot", errno);
        return false;
    }
    if (area_)
        munmap(area_, slot_stride);
    area_ = static_cast<WorkerArea*>(p);
    index_.clear();
    // A fresh slot is all zeros; entry 0 becomes "-". A slot with names already (attach
    // called again) keeps them.
    const std::size_t n = std::min<std::size_t>(load(area_->totals.route_count), routes_per_slot);
    if (n == 0) {
        area_->routes[0].name[0] = '-';
        store(area_->totals.route_count, 1, std::memory_order_release);
        index_.emplace("-", 0);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const char* name = area_->routes[i].name;
        index_.emplace(std::string(name, strnlen(name, route_name_size)), i);
    }
    return true;
}

RouteEntry& MetricsSlot::route_entry(std::string_view route)
{
    if (auto it = index_.find(route); it != index_.end())
        return area_->routes[it->second];
    const std::size_t n = load(area_->totals.route_count);
    if (route.empty() || route.size() >= route_name_size || n >= routes_per_slot) {
        add(area_->totals.route_overflow, 1);
        return area_->routes[index_.find(std::string_view("-"))->second];
    }
    RouteEntry& e = area_->routes[n];
    std::memset(e.name, 0, sizeof e.name);
    route.copy(e.name, route.size());
    // The name is complete before a reader can see the entry.
    store(area_->totals.route_count, n + 1, std::memory_order_release);
    index_.emplace(std::string(route), n);
    return e;
}

void MetricsSlot::connection_done(std::string_view route, std::string_view result, std::uint64_t up,
    std::uint64_t down, double hello_seconds)
{
    if (area_)
        connection_done(route, conn_result_from_name(result), up, down, hello_seconds);
}

void MetricsSlot::connection_done(std::string_view route, ConnResult result, std::uint64_t up,
    std::uint64_t down, double hello_seconds)
{
    if (!area_)
        return;
    RouteEntry& e = route_entry(route);
    add(e.results[static_cast<std::size_t>(result) % conn_result_count], 1);
    add(e.up, up);
    add(e.down, down);
    if (const auto reason = reject_reason_of(result))
        add(area_->totals.rejected[static_cast<std::size_t>(*reason)], 1);
    if (hello_seconds >= 0) { // also false for NaN
        add(area_->totals.hello[hello_bucket(hello_seconds)], 1);
        add(area_->totals.hello_count, 1);
        // Clamped at about 30 years, far past any -T, so the conversion cannot overflow.
        add(area_->totals.hello_sum_ns,
            static_cast<std::uint64_t>(std::llround(std::fmin(hello_seconds, 1e9) * 1e9)));
    }
}

void MetricsSlot::active(int delta)
{
    if (!area_)
        return;
    const std::uint64_t now = load(area_->active);
    if (delta >= 0 || now >= static_cast<std::uint64_t>(-static_cast<std::int64_t>(delta)))
        store(area_->active, now + static_cast<std::uint64_t>(static_cast<std::int64_t>(delta)));
    else
        store(area_->active, 0);
}

void MetricsSlot::set_open_fds(int n)
{
    if (area_)
        store(area_->open_fds, n < 0 ? 0 : static_cast<Counter>(n) + 1);
}

} // namespace sniproxy
