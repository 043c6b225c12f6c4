// relay_test.cc: the established-connection data path on real sockets and a real event loop:
// bulk data byte-exact both ways (through the splice path), a receiver slower than the sender
// (bytes parked in the pipe or in the pending buffer, nothing lost), half-close passed on,
// a reset reported on the right side, no descriptor left behind, and idle-timeout.
#include "catch.h"
#include "pipe_pool.h"
#include "relay.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace sniproxy;

namespace {

struct Pair {
    UniqueFd ours, relayed; // `relayed` goes to the relay, non-blocking
    Pair()
    {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        ours.reset(sv[0]);
        relayed.reset(sv[1]);
        REQUIRE(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    }
};

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed)
{
    std::mt19937 rng(seed);
    std::vector<std::uint8_t> v(n);
    for (auto& b : v)
        b = static_cast<std::uint8_t>(rng());
    return v;
}

// Blocking helpers for the peers, run on threads while the relay's loop runs on this one.
void write_all(int fd, const std::vector<std::uint8_t>& data, bool then_shutdown)
{
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n
            = write(fd, data.data() + off, std::min<std::size_t>(data.size() - off, 100000));
        if (n <= 0)
            return;
        off += static_cast<std::size_t>(n);
    }
    if (then_shutdown)
        shutdown(fd, SHUT_WR);
}

std::vector<std::uint8_t> read_to_eof(int fd, bool slowly = false)
{
    std::vector<std::uint8_t> out;
    std::uint8_t buf[7000];
    for (;;) {
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return out;
        out.insert(out.end(), buf, buf + n);
        if (slowly && out.size() % 20 == 0)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

int open_fds()
{
    int n = 0;
    DIR* d = opendir("/proc/self/fd");
    while (readdir(d) != nullptr)
        n++;
    closedir(d);
    return n;
}

// Plays the relay's owner (a Connection): records the result and destroys the relay, which
// closes both sockets.
struct Outcome {
    std::unique_ptr<Relay> relay;
    bool done = false;
    std::string result;
    std::uint64_t up = 0, down = 0;
};

void on_done(void* owner, const char* result, int)
{
    auto* o = static_cast<Outcome*>(owner);
    o->done = true;
    o->result = result;
    o->up = o->relay->up();
    o->down = o->relay->down();
    o->relay.reset();
}

// Runs the relay's loop in 1 ms slices, at most `slices` of them, until `stop()` is true.
template <class Stop> void run_loop(event_base* base, int slices, Stop stop)
{
    for (int i = 0; i < slices && !stop(); i++) {
        const timeval ms { 0, 1000 };
        event_base_loopexit(base, &ms);
        event_base_dispatch(base);
    }
}

// Runs the loop until the relay reports (or 20 s pass, which fails the test).
void run_until_done(event_base* base, const Outcome& o)
{
    run_loop(base, 20000, [&] { return o.done; });
    REQUIRE(o.done);
}

// A relay between two socketpairs, with its event loop and its owner. Members are destroyed
// in reverse: the relay (in `o`) before the sockets' other ends and the loop.
struct Rig {
    EventBasePtr base { event_base_new() };
    Pair client, backend;
    Outcome o;
    Rig()
    {
        o.relay = std::make_unique<Relay>(
            base.get(), std::move(client.relayed), std::move(backend.relayed), on_done, &o);
    }
};

} // namespace

// Workers ignore SIGPIPE (splice has no MSG_NOSIGNAL); so must the test.
const bool sigpipe_ignored = signal(SIGPIPE, SIG_IGN) != SIG_ERR;

TEST_CASE("bulk data crosses byte-exact both ways at once, and half-close is passed on")
{
    REQUIRE(sigpipe_ignored);
    const int fds_before = open_fds();
    const std::vector<std::uint8_t> hello = { 22, 3, 1, 0, 1, 1 };
    const auto up = random_bytes(6 << 20, 1);
    const auto down = random_bytes(5 << 20, 2);
    {
        Rig r;
        auto& [base, client, backend, o] = r;
        const std::vector<std::uint8_t> header = { 'P', 'R' };
        std::vector<std::uint8_t> first = header;
        first.insert(first.end(), hello.begin(), hello.end());
        o.relay->start(first, header.size());

        std::vector<std::uint8_t> at_backend, at_client;
        std::thread t1([&] { write_all(client.ours.get(), up, true); });
        std::thread t2([&] { write_all(backend.ours.get(), down, true); });
        std::thread t3([&] { at_backend = read_to_eof(backend.ours.get()); });
        std::thread t4([&] { at_client = read_to_eof(client.ours.get(), true); });
        run_until_done(base.get(), o);
        t1.join();
        t2.join();
        t3.join();
        t4.join();

        CHECK(o.result == "ok");
        std::vector<std::uint8_t> expected = first;
        expected.insert(expected.end(), up.begin(), up.end());
        REQUIRE(at_backend.size() == expected.size());
        CHECK(at_backend == expected);
        REQUIRE(at_client.size() == down.size());
        CHECK(at_client == down);
        CHECK(o.up == hello.size() + up.size()); // the header is not the client's
        CHECK(o.down == down.size());
        // Bulk data went through pipes, and none is held by the finished relay.
        CHECK(pipe_pool::open_pipes() > 0);
    }
    // Only the pooled (empty, reusable) pipes remain.
    CHECK(open_fds() == fds_before + 2 * static_cast<int>(pipe_pool::open_pipes()));
}

TEST_CASE("a backend that stops reading pauses the client side; nothing is lost")
{
    Rig r;
    auto& [base, client, backend, o] = r;
    const auto up = random_bytes(3 << 20, 3);
    o.relay->start({}, 0);
    shutdown(backend.ours.get(), SHUT_WR); // the backend sends nothing
    std::thread writer([&] { write_all(client.ours.get(), up, true); });
    // Let the relay fill every buffer on the way while the backend reads nothing.
    run_loop(base.get(), 200, [] { return false; });
    REQUIRE(o.relay);
    CHECK(o.relay->up() < up.size()); // stalled: reading the client waits for the backend
    std::vector<std::uint8_t> at_backend;
    std::thread reader([&] { at_backend = read_to_eof(backend.ours.get(), true); });
    run_until_done(base.get(), o);
    writer.join();
    reader.join();
    CHECK(o.result == "ok");
    REQUIRE(at_backend.size() == up.size());
    CHECK(at_backend == up);
}

TEST_CASE("a backend reset while bulk data flows ends the relay as backend-reset")
{
    Rig r;
    auto& [base, client, backend, o] = r;
    const auto up = random_bytes(8 << 20, 4);
    o.relay->start({}, 0);
    std::thread writer([&] { write_all(client.ours.get(), up, false); });
    pollfd p { backend.ours.get(), POLLIN, 0 };
    run_loop(base.get(), 5000, [&] { return poll(&p, 1, 0) != 0; });
    std::uint8_t buf[4096];
    REQUIRE(read(backend.ours.get(), buf, sizeof buf) > 0); // data is flowing
    backend.ours.reset(); // unread data pending: the relay's next write fails
    run_until_done(base.get(), o);
    shutdown(client.ours.get(), SHUT_RDWR); // unblocks the writer (close would not)
    writer.join();
    CHECK(o.result == "backend-reset");
}

TEST_CASE("idle-timeout ends a quiet relay, and traffic either way keeps it open")
{
    Rig r;
    auto& [base, client, backend, o] = r;
    o.relay->set_idle_timeout(1);
    o.relay->start({}, 0);
    const auto start = std::chrono::steady_clock::now();
    // Bytes every 300 ms for 1.5 s, alternating directions: never quiet for a second.
    std::uint8_t byte = 'x', got = 0;
    for (int i = 0; i < 5; i++) {
        const bool up = i % 2 == 0;
        REQUIRE(write(up ? client.ours.get() : backend.ours.get(), &byte, 1) == 1);
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        run_loop(base.get(), 20000, [&] { return std::chrono::steady_clock::now() >= until; });
        REQUIRE_FALSE(o.done);
        REQUIRE(read(up ? backend.ours.get() : client.ours.get(), &got, 1) == 1);
    }
    const auto last = std::chrono::steady_clock::now();
    CHECK(last - start >= std::chrono::milliseconds(1400));
    run_until_done(base.get(), o);
    const auto quiet = std::chrono::steady_clock::now() - last;
    CHECK(o.result == "idle-timeout");
    CHECK(quiet >= std::chrono::milliseconds(650)); // the last byte was read 300 ms before
    CHECK(quiet < std::chrono::milliseconds(1500));
}

// A rollover moves an established relay to another worker (export_state, then import_state
// there): bytes parked in the pipe and in memory arrive intact, and the byte counts go on.
TEST_CASE("a relay exported mid-stream and imported elsewhere loses, duplicates nothing")
{
    REQUIRE(sigpipe_ignored);
    Rig r;
    auto& [base, client, backend, o] = r;
    const auto up = random_bytes(3 << 20, 5);
    const auto down = random_bytes(2 << 20, 6);
    o.relay->start({}, 0);
    // Neither side reads: the relay fills its pipe and its pending buffer.
    std::thread w1([&] { write_all(client.ours.get(), up, true); });
    std::thread w2([&] { write_all(backend.ours.get(), down, true); });
    run_loop(base.get(), 200, [] { return false; });
    REQUIRE(o.relay);
    const std::uint64_t up_before = o.relay->up(), down_before = o.relay->down();
    RelayState state = o.relay->export_state();
    o.relay.reset(); // the old worker forgets it: nothing may close
    CHECK(state.up.splicing);
    CHECK(state.up.in_pipe > 0);
    CHECK(static_cast<bool>(state.pipe));
    CHECK(!state.down.pending.empty());
    CHECK(state.up.bytes == up_before);
    CHECK(state.down.bytes == down_before);

    EventBasePtr other(event_base_new()); // the new worker's loop
    o.relay = Relay::import_state(other.get(), std::move(state), on_done, &o);
    std::vector<std::uint8_t> at_backend, at_client;
    std::thread r1([&] { at_backend = read_to_eof(backend.ours.get()); });
    std::thread r2([&] { at_client = read_to_eof(client.ours.get()); });
    run_until_done(other.get(), o);
    w1.join();
    w2.join();
    r1.join();
    r2.join();
    CHECK(o.result == "ok");
    REQUIRE(at_backend.size() == up.size());
    CHECK(at_backend == up);
    REQUIRE(at_client.size() == down.size());
    CHECK(at_client == down);
    CHECK(o.up == up.size());
    CHECK(o.down == down.size());
}

TEST_CASE("a relay moved after the client's half-close still ends when the backend does")
{
    REQUIRE(sigpipe_ignored);
    Rig r;
    auto& [base, client, backend, o] = r;
    o.relay->start({}, 0);
    const std::vector<std::uint8_t> request = { 'G', 'E', 'T' };
    write_all(client.ours.get(), request, true);
    run_loop(base.get(), 50, [] { return false; });
    RelayState state = o.relay->export_state();
    o.relay.reset();
    CHECK(state.up.eof);
    CHECK(state.up.shut);
    CHECK(!state.down.eof);

    EventBasePtr other(event_base_new());
    o.relay = Relay::import_state(other.get(), std::move(state), on_done, &o);
    const auto reply = random_bytes(300000, 7);
    std::vector<std::uint8_t> at_backend, at_client;
    std::thread r1([&] { at_backend = read_to_eof(backend.ours.get()); });
    std::thread r2([&] { at_client = read_to_eof(client.ours.get()); });
    std::thread w([&] { write_all(backend.ours.get(), reply, true); });
    run_until_done(other.get(), o);
    w.join();
    r1.join();
    r2.join();
    CHECK(o.result == "ok");
    CHECK(at_backend == request);
    CHECK(at_client == reply);
}
