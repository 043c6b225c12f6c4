// metrics_store.cc: creating and mapping the shared metrics region, and the parent's side
// of it: slots for workers, folding an exited worker's counts into the retired totals, the
// parent's own refusals. The parent copies a dead worker's numbers and fixed-size names
// without interpreting them; names are checked by the reader (metrics_read.cc).
#include "metrics_store.h"

#include "log.h"
#include "metrics_layout.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sniproxy {

using namespace metrics_layout;

namespace {

    WorkerArea* worker_area(void* base, std::size_t slot)
    {
        return reinterpret_cast<WorkerArea*>(
            static_cast<char*>(base) + slots_offset + slot * slot_stride);
    }

    void add_totals(Totals& to, const Totals& from)
    {
        add(to.route_overflow, load(from.route_overflow));
        for (std::size_t i = 0; i < reject_reason_count; ++i)
            add(to.rejected[i], load(from.rejected[i]));
        for (std::size_t i = 0; i < hello_bucket_count; ++i)
            add(to.hello[i], load(from.hello[i]));
        add(to.hello_count, load(from.hello_count));
        add(to.hello_sum_ns, load(from.hello_sum_ns));
    }

    void add_route(RouteEntry& to, const RouteEntry& from)
    {
        for (std::size_t i = 0; i < conn_result_count; ++i)
            add(to.results[i], load(from.results[i]));
        add(to.up, load(from.up));
        add(to.down, load(from.down));
    }

    std::uint64_t connections_of(const RouteEntry& e)
    {
        std::uint64_t n = 0;
        for (const Counter& c : e.results)
            n += load(c);
        return n;
    }

} // namespace

MetricsStore::~MetricsStore()
{
    if (base_)
        munmap(base_, region_size);
}

bool MetricsStore::create(std::string_view version, std::string* err)
{
    UniqueFd fd(memfd_create("sniproxyd-metrics", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) {
        *err = errno_message("metrics: memfd_create", errno);
        return false;
    }
    // Sealed, so no child can shrink it under the others' mappings (SIGBUS on access).
    if (ftruncate(fd.get(), static_cast<off_t>(region_size)) != 0
        || fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        *err = errno_message("metrics: sizing the shared region", errno);
        return false;
    }
    void* base = mmap(nullptr, region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (base == MAP_FAILED) {
        *err = errno_message("metrics: mmap of the shared region", errno);
        return false;
    }
    base_ = base;
    fd_ = std::move(fd);
    writable_ = true;
    parent_ = static_cast<ParentArea*>(base);
    retired_ = reinterpret_cast<RetiredArea*>(static_cast<char*>(base) + retired_offset);

    timespec now {};
    clock_gettime(CLOCK_REALTIME, &now);
    store(parent_->start_time_ns,
        static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u
            + static_cast<std::uint64_t>(now.tv_nsec));
    version.copy(parent_->version, std::min(version.size(), version_size - 1));
    // Entry 0 of the retired routes is "-", where names that do not fit are counted.
    retired_->routes[0].name[0] = '-';
    retired_index_.emplace("-", 0);
    store(retired_->totals.route_count, 1, std::memory_order_release);
    store(parent_->magic, magic, std::memory_order_release);
    return true;
}

bool MetricsStore::open_readonly(int fd, std::string* err)
{
    struct stat st { };
    if (fstat(fd, &st) != 0) {
        *err = errno_message("metrics: fstat of the shared region", errno);
        return false;
    }
    if (static_cast<std::size_t>(st.st_size) != region_size) {
        *err = "metrics: descriptor " + std::to_string(fd) + " is not the metrics region";
        return false;
    }
    void* base = mmap(nullptr, region_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        *err = errno_message("metrics: mmap of the shared region", errno);
        return false;
    }
    const auto* parent = static_cast<const ParentArea*>(base);
    if (load(parent->magic, std::memory_order_acquire) != magic) {
        munmap(base, region_size);
        *err = "metrics: the shared region was not initialised by the parent";
        return false;
    }
    base_ = base;
    parent_ = static_cast<ParentArea*>(base);
    retired_ = reinterpret_cast<RetiredArea*>(static_cast<char*>(base) + retired_offset);
    return true;
}

bool MetricsStore::readonly_fd(UniqueFd* out, std::string* err) const
{
    // A new open file description of the memfd, opened for reading only.
    const std::string path = "/proc/self/fd/" + std::to_string(fd_.get());
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        *err
            = errno_message("metrics: reopening the shared region read-only (" + path + ")", errno);
        return false;
    }
    *out = std::move(fd);
    return true;
}

int MetricsStore::claim_slot(unsigned generation)
{
    if (!writable_)
        return -1;
    for (std::size_t i = 0; i < max_slots; ++i) {
        SlotInfo& s = parent_->slots[i];
        if (load(s.state) != static_cast<Counter>(WorkerState::free))
            continue;
        store(s.generation, generation);
        store(s.pid, 0);
        store(s.state, static_cast<Counter>(WorkerState::starting), std::memory_order_release);
        return static_cast<int>(i);
    }
    add(parent_->unslotted, 1);
    return -1;
}

void MetricsStore::set_worker(int slot, pid_t pid)
{
    if (writable_ && slot >= 0 && static_cast<std::size_t>(slot) < max_slots)
        store(parent_->slots[slot].pid, static_cast<Counter>(pid));
}

void MetricsStore::set_state(int slot, WorkerState state)
{
    if (writable_ && slot >= 0 && static_cast<std::size_t>(slot) < max_slots
        && state != WorkerState::free)
        store(parent_->slots[slot].state, static_cast<Counter>(state));
}

void MetricsStore::fold_route(const RouteEntry& from)
{
    // A copy first: the name must not change between the check and its use.
    char name[route_name_size];
    std::memcpy(name, from.name, sizeof name);
    const std::string key(route_label(name));
    std::size_t index = 0; // "-"
    if (auto it = retired_index_.find(key); it != retired_index_.end()) {
        index = it->second;
    } else if (const std::size_t n = load(retired_->totals.route_count); n < retired_routes) {
        key.copy(retired_->routes[n].name, key.size());
        store(retired_->totals.route_count, n + 1, std::memory_order_release);
        retired_index_.emplace(key, n);
        index = n;
    } else {
        add(retired_->totals.route_overflow, connections_of(from));
    }
    add_route(retired_->routes[index], from);
}

void MetricsStore::release_slot(int slot)
{
    if (!writable_ || slot < 0 || static_cast<std::size_t>(slot) >= max_slots)
        return;
    WorkerArea* area = worker_area(base_, static_cast<std::size_t>(slot));
    // Seqlock: a reader that overlaps this sees seq change and reads again, so it never
    // counts the slot twice (in the slot and in the retired totals) or not at all.
    const Counter seq = load(parent_->seq);
    store(parent_->seq, seq + 1);
    std::atomic_thread_fence(std::memory_order_release);

    add_totals(retired_->totals, area->totals);
    const std::size_t routes
        = std::min<std::size_t>(load(area->totals.route_count), routes_per_slot);
    for (std::size_t i = 0; i < routes; ++i)
        fold_route(area->routes[i]);
    SlotInfo& s = parent_->slots[slot];
    store(s.generation, 0);
    store(s.pid, 0);
    store(s.state, static_cast<Counter>(WorkerState::free));
    store(parent_->seq, seq + 2, std::memory_order_release);

    // Readers skip a free slot, so zeroing it for the next worker can wait until now.
    // Punching the hole also gives the memory back.
    const auto offset
        = static_cast<off_t>(slots_offset + static_cast<std::size_t>(slot) * slot_stride);
    if (fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, slot_stride) != 0)
        std::memset(static_cast<void*>(area), 0, slot_stride);
}

void MetricsStore::count_rejected(RejectReason reason)
{
    const auto i = static_cast<std::size_t>(reason);
    if (writable_ && i < reject_reason_count)
        add(parent_->rejected[i], 1);
}

void MetricsStore::count_moved(unsigned generation, std::uint64_t n)
{
    if (!writable_ || generation == 0 || n == 0)
        return;
    MovedEntry& e = parent_->moved[generation % moved_generations];
    if (load(e.generation) != generation) { // a generation 16 older gives up its entry
        store(e.count, 0);
        store(e.generation, generation);
    }
    add(e.count, n);
}

void MetricsStore::set_parent_open_fds(int n)
{
    if (writable_)
        store(parent_->open_fds, n < 0 ? 0 : static_cast<Counter>(n) + 1);
}

int count_open_fds()
{
    DIR* dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int n = 0;
    while (const dirent* e = readdir(dir))
        if (e->d_name[0] != '.')
            ++n;
    closedir(dir);
    return n - 1; // the descriptor opendir itself holds
}

} // namespace sniproxy
