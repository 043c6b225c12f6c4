// accept_pacer.h: how many connections the parent accepts when a listener is readable.
// Accepting until EAGAIN costs a failing accept4 at the end of every batch, and at a modest
// rate most batches hold one connection: a wasted call per connection. Level-triggered epoll
// reports a listener again while its queue is not empty, so nothing is lost by stopping
// early; when connections come close together, stopping early costs an epoll_wait (and a
// smaller hand-over) per connection instead, so then the pacer asks the kernel the queue's
// length (TCP_INFO's tcpi_unacked on a listener, one getsockopt) and takes exactly that.
//
// "Close together" is told two ways. By time: readiness again within busy_gap_ns. By what
// the previous readiness found, whatever the time since: the time between two reports
// includes the parent's other callbacks, so a parent whose every loop turn is longer than
// the gap (busy workers' messages, late wake-ups on a shared core) would otherwise take one
// connection a turn while its queue fills. So the queue is asked too when the previous
// readiness used its whole budget without EAGAIN and may have left some behind.
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
    // After the queue was asked and held at most one (connections come apart), this many
    // readinesses that took their one accept are not reason enough to ask again: at a modest
    // rate a probe per connection would cost what the pacer saves. A parent falling behind
    // is noticed within this many loop turns.
    static constexpr unsigned calm_readinesses = 8;

    // Whether to ask the kernel the queue length before accepting, on a readiness at now_ns.
    bool wants_probe(std::int64_t now_ns);

    enum class Probe { skipped, answered, failed };
    // How many to accept now: one when the probe was skipped, what is queued (at most
    // max_batch) when it answered, max_batch (until EAGAIN, as for a non-TCP socket whose
    // queue nobody can tell) when it failed.
    std::size_t budget(Probe probe, std::size_t queued);

    // What this readiness did with its budget: `tried` accepts (refused and failed ones
    // included), `emptied`: the last said EAGAIN.
    void finished(std::size_t tried, bool emptied);

private:
    std::int64_t last_ns_ = 0; // the previous readiness; 0: none yet
    Probe probe_ = Probe::skipped; // this readiness's
    std::size_t queued_ = 0; // what its probe answered
    std::size_t budget_ = 1;
    bool behind_ = false; // the previous readiness may have left connections queued
    unsigned calm_ = 0; // readinesses still to go before a full one-accept budget counts
};

} // namespace sniproxy
