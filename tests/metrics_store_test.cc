// metrics_store_test.cc: the shared counter store, with workers played by forked children
// that write their own slot and exit (or are killed), as real workers do. What the test
// checks is what a scrape would show: read_all.
#include "catch.h"
#include "metrics_layout.h"
#include "metrics_store.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

using namespace sniproxy;

namespace {

// Runs body in a forked child; returns its wait status.
int in_child(const std::function<void()>& body)
{
    const pid_t pid = fork();
    if (pid == 0) {
        body();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

// A worker in a child: attaches slot `slot` through the inherited descriptor and counts.
int worker(const MetricsStore& store, int slot, const std::function<void(MetricsSlot&)>& work)
{
    return in_child([&] {
        MetricsSlot s;
        std::string err;
        if (!s.attach(store.fd(), slot, &err))
            _exit(3);
        work(s);
    });
}

const RouteTotals* find_route(const Snapshot& s, std::string_view name)
{
    for (const RouteTotals& r : s.routes)
        if (r.route == name)
            return &r;
    return nullptr;
}

std::uint64_t result(const Snapshot& s, std::string_view route, ConnResult r)
{
    const RouteTotals* t = find_route(s, route);
    return t ? t->results[static_cast<std::size_t>(r)] : 0;
}

std::uint64_t all_connections(const Snapshot& s)
{
    std::uint64_t n = 0;
    for (const RouteTotals& r : s.routes)
        for (std::uint64_t v : r.results)
            n += v;
    return n;
}

MetricsStore& fresh(MetricsStore& store)
{
    std::string err;
    REQUIRE(store.create("1.2.3", &err));
    return store;
}

} // namespace

TEST_CASE("what a worker counts is seen by the reader, and kept after the worker is gone")
{
    MetricsStore store;
    fresh(store);
    const int slot = store.claim_slot(1);
    REQUIRE(slot == 0);
    CHECK(worker(store, slot, [](MetricsSlot& m) {
        m.connection_done("example.com", "ok", 100, 2000, 0.002);
        m.connection_done("example.com", "ok", 10, 20, 0.003);
        m.connection_done("example.com", "backend-refused", 0, 0, 0.004);
        m.connection_done("-", "bad-hello", 0, 0, -1);
        m.active(+1);
        m.active(+1);
        m.active(-1);
    }) == 0);
    store.set_worker(slot, 4242);
    store.set_state(slot, WorkerState::ready);

    Snapshot s = store.read_all();
    CHECK(s.version == "1.2.3");
    CHECK(s.start_time_seconds > 1.7e9);
    CHECK(result(s, "example.com", ConnResult::ok) == 2);
    CHECK(result(s, "example.com", ConnResult::backend_refused) == 1);
    CHECK(result(s, "-", ConnResult::bad_hello) == 1);
    CHECK(find_route(s, "example.com")->up == 110);
    CHECK(find_route(s, "example.com")->down == 2020);
    CHECK(s.hello_count == 3); // the bad hello decided no route: not observed
    CHECK(s.hello_buckets[1] == 1); // 0.002 <= 0.0025
    CHECK(s.hello_buckets[2] == 2); // 0.003, 0.004 <= 0.005
    CHECK(s.hello_sum_seconds == Approx(0.009));
    REQUIRE(s.workers.size() == 1);
    CHECK(s.workers[0].pid == 4242);
    CHECK(s.workers[0].generation == 1);
    CHECK(s.workers[0].state == WorkerState::ready);
    CHECK(s.workers[0].active == 1);
    CHECK(s.workers[0].handled == 4);

    // Reaped: the totals stay, the worker and its gauge go, the slot is reused empty.
    store.release_slot(slot);
    s = store.read_all();
    CHECK(s.workers.empty());
    CHECK(result(s, "example.com", ConnResult::ok) == 2);
    CHECK(find_route(s, "example.com")->down == 2020);
    CHECK(s.hello_count == 3);
    REQUIRE(store.claim_slot(2) == slot);
    CHECK(worker(store, slot, [](MetricsSlot& m) {
        m.connection_done("example.com", "ok", 1, 1, 0.5);
        m.connection_done("other.example", "no-route", 0, 0, 0.1);
    }) == 0);
    s = store.read_all();
    CHECK(result(s, "example.com", ConnResult::ok) == 3);
    CHECK(result(s, "other.example", ConnResult::no_route) == 1);
    REQUIRE(s.workers.size() == 1);
    CHECK(s.workers[0].generation == 2);
    CHECK(s.workers[0].state == WorkerState::starting);
    CHECK(s.workers[0].handled == 2); // only its own, not the previous worker's
    store.release_slot(slot);
    CHECK(result(store.read_all(), "example.com", ConnResult::ok) == 3);
}

TEST_CASE("a worker killed with SIGKILL loses none of what it counted")
{
    MetricsStore store;
    fresh(store);
    const int slot = store.claim_slot(1);
    const int status = worker(store, slot, [](MetricsSlot& m) {
        for (int i = 0; i < 1000; ++i)
            m.connection_done("a.example", "ok", 1, 2, 0.01);
        raise(SIGKILL);
    });
    CHECK(WIFSIGNALED(status));
    store.release_slot(slot);
    const Snapshot s = store.read_all();
    CHECK(result(s, "a.example", ConnResult::ok) == 1000);
    CHECK(find_route(s, "a.example")->down == 2000);
}

TEST_CASE("refusals count in sniproxyd_rejected and as the connection's result")
{
    MetricsStore store;
    fresh(store);
    const int slot = store.claim_slot(1);
    worker(store, slot, [](MetricsSlot& m) {
        m.connection_done("example.com", "denied", 0, 0, 0.001); // per-host allow
        m.connection_done("-", "limit-hellos", 0, 0, -1);
    });
    store.count_rejected(RejectReason::limit_rate); // refused in the parent
    store.count_rejected(RejectReason::limit_rate);
    const Snapshot s = store.read_all();
    CHECK(s.rejected[static_cast<std::size_t>(RejectReason::denied)] == 1);
    CHECK(s.rejected[static_cast<std::size_t>(RejectReason::limit_hellos)] == 1);
    CHECK(s.rejected[static_cast<std::size_t>(RejectReason::limit_rate)] == 2);
    CHECK(s.rejected[static_cast<std::size_t>(RejectReason::shed)] == 0);
    CHECK(result(s, "example.com", ConnResult::denied) == 1);
    CHECK(result(s, "-", ConnResult::limit_rate) == 2);
    CHECK(all_connections(s) == 4);
}

TEST_CASE("moves are counted by generation, the last 16 generations kept")
{
    MetricsStore store;
    fresh(store);
    CHECK(store.read_all().moved.empty());
    store.count_moved(2, 3);
    store.count_moved(2, 1);
    store.count_moved(3, 5);
    store.count_moved(0, 7); // no generation: ignored
    using Moved = std::vector<std::pair<unsigned, std::uint64_t>>;
    CHECK(store.read_all().moved == Moved { { 2, 4 }, { 3, 5 } });
    store.count_moved(18, 2); // 16 generations on: takes generation 2's entry
    CHECK(store.read_all().moved == Moved { { 3, 5 }, { 18, 2 } });
}

TEST_CASE("the 129th route name of a worker is counted under -, and said so")
{
    MetricsStore store;
    fresh(store);
    const int slot = store.claim_slot(1);
    worker(store, slot, [](MetricsSlot& m) {
        for (int i = 0; i < 130; ++i) // "-" holds entry 0, so 127 names fit
            m.connection_done("h" + std::to_string(i) + ".example", "ok", 1, 1, 0.001);
        m.connection_done(std::string(300, 'x'), "ok", 1, 1, 0.001); // cannot be a name
    });
    const Snapshot s = store.read_all();
    CHECK(result(s, "h126.example", ConnResult::ok) == 1);
    CHECK(find_route(s, "h127.example") == nullptr);
    CHECK(result(s, "-", ConnResult::ok) == 4);
    CHECK(s.route_overflow == 4);
    CHECK(all_connections(s) == 131);
}

TEST_CASE("a slot for every worker until they run out; the rest are counted")
{
    MetricsStore store;
    fresh(store);
    for (unsigned i = 0; i < MetricsStore::max_slots; ++i)
        REQUIRE(store.claim_slot(1) == static_cast<int>(i));
    CHECK(store.claim_slot(1) == -1);
    CHECK(store.read_all().unslotted_workers == 1);
    CHECK(store.read_all().workers.size() == MetricsStore::max_slots);
    store.release_slot(7);
    CHECK(store.claim_slot(2) == 7);
    MetricsSlot detached; // what a worker without a slot holds: counting does nothing
    detached.connection_done("example.com", "ok", 1, 1, 0.1);
    detached.active(1);
    CHECK_FALSE(detached.attached());
}

TEST_CASE("the server's read-only view sees the same; a wrong descriptor is refused")
{
    MetricsStore store;
    fresh(store);
    store.set_parent_open_fds(12);
    const int slot = store.claim_slot(3);
    worker(store, slot, [](MetricsSlot& m) {
        m.connection_done("example.com", "ok", 5, 6, 0.01);
        m.set_open_fds(9);
    });
    MetricsStore reader;
    std::string err;
    REQUIRE(reader.open_readonly(store.fd(), &err));
    const Snapshot s = reader.read_all();
    CHECK(result(s, "example.com", ConnResult::ok) == 1);
    CHECK(s.parent_open_fds == 12);
    REQUIRE(s.workers.size() == 1);
    CHECK(s.workers[0].open_fds == 9);
    reader.release_slot(slot); // a reader cannot change anything
    CHECK(store.read_all().workers.size() == 1);
    CHECK(reader.claim_slot(1) == -1);

    // The server's own descriptor: mapped, it cannot be made writable.
    UniqueFd ro;
    REQUIRE(store.readonly_fd(&ro, &err));
    MetricsStore server_view;
    REQUIRE(server_view.open_readonly(ro.get(), &err));
    CHECK(result(server_view.read_all(), "example.com", ConnResult::ok) == 1);
    void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, ro.get(), 0);
    REQUIRE(p != MAP_FAILED);
    CHECK(mprotect(p, 4096, PROT_READ | PROT_WRITE) != 0);
    CHECK(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro.get(), 0) == MAP_FAILED);
    munmap(p, 4096);

    MetricsStore wrong;
    CHECK_FALSE(wrong.open_readonly(STDIN_FILENO, &err));
    CHECK_FALSE(err.empty());
    MetricsSlot slot_view;
    CHECK_FALSE(slot_view.attach(store.fd(), 256, &err));
    CHECK(err == "metrics: slot 256 does not exist");
}

TEST_CASE("a hostile worker cannot inject label values or read past its tables")
{
    using namespace metrics_layout;
    MetricsStore store;
    fresh(store);
    const int slot = store.claim_slot(1);
    // Writes its area raw, as a compromised worker could.
    in_child([&] {
        void* p = mmap(nullptr, slot_stride, PROT_READ | PROT_WRITE, MAP_SHARED, store.fd(),
            static_cast<off_t>(slots_offset + static_cast<std::size_t>(slot) * slot_stride));
        auto* area = static_cast<WorkerArea*>(p);
        std::strcpy(area->routes[0].name, "evil\"} 1\n# EOF");
        area->routes[0].results[0] = 5;
        std::memset(area->routes[1].name, 'a', route_name_size); // no NUL
        area->routes[1].results[0] = 7;
        area->totals.route_count = ~0ull; // far past the table
    });
    const Snapshot s = store.read_all();
    for (const RouteTotals& r : s.routes)
        CHECK((r.route == "-"
            || r.route.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-_*")
                == std::string::npos));
    CHECK(result(s, "-", ConnResult::ok) == 12);
    store.release_slot(slot); // the parent folds it the same way
    CHECK(result(store.read_all(), "-", ConnResult::ok) == 12);
}

TEST_CASE("a scrape during folds never sees the totals go down")
{
    MetricsStore store;
    fresh(store);
    std::atomic<bool> done { false };
    std::atomic<bool> went_down { false };
    std::atomic<std::uint64_t> reads { 0 };
    std::thread reader([&] {
        std::uint64_t last = 0;
        while (!done.load()) {
            const std::uint64_t now = all_connections(store.read_all());
            if (now < last)
                went_down = true;
            last = now;
            ++reads;
        }
    });
    constexpr int rounds = 3000;
    for (int i = 0; i < rounds; ++i) {
        const int slot = store.claim_slot(1);
        {
            MetricsSlot m;
            std::string err;
            REQUIRE(m.attach(store.fd(), slot, &err));
            for (int k = 0; k < 20; ++k)
                m.connection_done("r" + std::to_string(k) + ".example", "ok", 1, 1, 0.001);
        }
        store.release_slot(slot);
    }
    done = true;
    reader.join();
    CHECK_FALSE(went_down);
    CHECK(reads > 0);
    CHECK(all_connections(store.read_all()) == rounds * 20u);
}

// Not run by default (tests/metrics_store_test "[.bench]"): prints ns per connection_done.
TEST_CASE("cost of connection_done", "[.bench]")
{
    MetricsStore store;
    fresh(store);
    MetricsSlot m;
    std::string err;
    REQUIRE(m.attach(store.fd(), store.claim_slot(1), &err));
    const char* routes[]
        = { "example.com", "www.example.com", "*.apps.example.com", "_default", "-" };
    const char* results[] = { "ok", "ok", "ok", "no-route", "backend-refused", "timeout" };
    constexpr int n = 10'000'000;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i)
        m.connection_done(routes[i % 5], results[i % 6], 1000, 20000, 0.0001 * (i % 100));
    const auto ns
        = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
              .count();
    std::printf("connection_done: %.1f ns per call (%d calls)\n", ns / n, n);
    CHECK(all_connections(store.read_all()) == static_cast<std::uint64_t>(n));
}
