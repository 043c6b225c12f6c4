// dispatcher.h: where accepted connections go. The least-loaded ready worker gets them, in
// batches of up to max_handover per message; what no worker can take waits in order in a
// pending queue while accepting pauses. Plain state and decisions: parent.cc calls these
// from its libevent callbacks and mirrors wants_accepting() and paused_until_ns() into events.
#pragma once

#include "fd.h"
#include "workers.h"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>

namespace sniproxy {

struct Pending {
    UniqueFd fd;
    ConnectionInfo info;
};

class Dispatcher {
public:
    Dispatcher(WorkerList& workers, std::size_t max_per_worker, Clock& clock);

    // The ready, not draining, not full worker with the fewest connections; among equals the
    // one after the last chosen, so that equal workers take turns. nullptr if none.
    WorkerSlot* least_loaded() const;
    // Hands `batch` over (our copies close once sent); what no worker takes now goes to the
    // back of the pending queue. True when every connection was handed over.
    bool hand_over(std::span<Pending> batch);
    // Retries the pending queue in order of arrival.
    void flush_pending();
    // The worker reports `n` connections ended. More than it holds is a protocol violation.
    bool on_closed(WorkerSlot& w, std::uint32_t n, std::string* err);
    // A channel that was full has room again.
    void on_room(WorkerSlot& w);
    // Out of descriptors or kernel memory: no accepting until resume(), due a second later.
    void pause();
    void resume();
    // Stopping: never accept again (pending connections are still handed over).
    void stop() { stopped_ = true; }

    bool wants_accepting() const;
    bool stopped() const { return stopped_; }
    std::int64_t paused_until_ns() const { return paused_until_ns_; }
    std::size_t pending() const { return pending_.size(); }

private:
    WorkerList& workers_;
    std::size_t max_per_worker_;
    Clock& clock_;
    std::deque<Pending> pending_;
    std::size_t next_ = 0; // rotation: ties go to the first worker at or after this index
    std::int64_t paused_until_ns_ = 0;
    bool stopped_ = false;
};

} // namespace sniproxy
