// accept_pacer.h: how many connections the parent accepts when a listener is readable.
// Accepting until EAGAIN costs a failing accept4 at the end of every batch, and at a modest
// rate most batches hold one connection: a wasted call per connection. Level-triggered epoll
// reports a listener again while its queue is not empty, so nothing is lost by stopping
// early; when connections come close together, stopping early costs an epoll_wait (and a
// smaller hand-over) per connection instead, so then the pacer asks the kernel the queue's
// length (TCP_INFO's tcpi_unacked on a listener, one getsockopt) and takes exactly that.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sniproxy {

class AcceptPacer {
public:
    // At most this many per readiness (the rest waits for the next loop iteration).
    static constexpr std::size_t max_batch = 64;
    // Readiness this soon after the previous one means connections come faster than the
    // parent takes them one by one (4,000 a second and more): ask the queue's length.
    static constexpr std::int64_t busy_gap_ns = 250'000;

    // Whether to ask the kernel the queue length before accepting, on a readiness at now_ns.
    bool wants_probe(std::int64_t now_ns);

    enum class Probe { skipped, answered, failed };
    // How many to accept now: one when the probe was skipped, what is queued (at most
    // max_batch) when it answered, max_batch (until EAGAIN, as for a non-TCP socket whose
    // queue nobody can tell) when it failed.
    static std::size_t budget(Probe probe, std::size_t queued);

private:
    std::int64_t last_ns_ = 0; // the previous readiness; 0: none yet
};

} // namespace sniproxy
