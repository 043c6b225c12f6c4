// accept_pacer.h: how many connections the parent accepts when a listener is readable.
// Accepting until EAGAIN costs a failing accept4 at the end of every batch, and at a steady
// rate most batches hold one connection: that is a wasted call per connection. Level-
// triggered epoll reports a listener again while its queue is not empty, so nothing is lost
// by stopping early; the kernel can also say how long the queue is (TCP_INFO's tcpi_unacked
// on a listener), at the price of one getsockopt. The pacer accepts one per readiness while
// batches are that small, asks the queue length now and then, and while the queue is deep
// asks every time and accepts exactly what is queued.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sniproxy {

class AcceptPacer {
public:
    // At most this many per readiness (the rest waits for the next loop iteration).
    static constexpr std::size_t max_batch = 64;
    // While batches are small, one readiness in this many asks the queue length.
    static constexpr std::uint32_t sample_every = 8;

    // Whether to ask the kernel the queue length before accepting this time.
    bool wants_probe();

    enum class Probe { skipped, answered, failed };
    // How many to accept now: one when the probe was skipped, what is queued (at most
    // max_batch) when it answered, max_batch (until EAGAIN, as for a non-TCP socket whose
    // queue nobody can tell) when it failed.
    std::size_t budget(Probe probe, std::size_t queued);

private:
    bool deep_ = false; // the last answer found more than one waiting
    std::uint32_t since_probe_ = 0;
};

} // namespace sniproxy
