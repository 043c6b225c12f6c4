// dispatcher.h: where accepted connections go. The least-loaded ready worker gets them, in
// batches of up to max_handover per message; what no worker can take waits in order in a
// pending queue while accepting pauses. Plain state and decisions: parent.cc calls these
// from its libevent callbacks and mirrors wants_accepting() and paused_until_ns() into events.
// It also keeps, per worker, each connection it holds (by id): the per-source counts follow the
// worker's reports (hello done, closed, the real source), a dead worker's connections are
// released, and under pressure hello-phase connections are shed (shed.h).
#pragma once

#include "fd.h"
#include "source_limits.h"
#include "workers.h"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>

namespace sniproxy {

struct Pending {
    UniqueFd fd;
    ConnectionInfo info; // the id is given on hand-over
    SourceKey key; // what SourceLimits::admit returned (not counted: nothing to release)
};

// A send error that means the other end of a channel is gone for good (others, such as
// ENOBUFS or ETOOMANYREFS, are the kernel's limit of the moment).
bool channel_broken(int err);

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
    // The worker reports these connections ended / routed. An id it does not hold (or, for
    // hello done, one no longer in its hello phase) is a protocol violation.
    bool on_closed(WorkerSlot& w, std::span<const std::uint32_t> ids, std::string* err);
    bool on_hello_done(WorkerSlot& w, std::span<const std::uint32_t> ids, std::string* err);
    // The worker read the real source of a connection in its hello phase (PROXY header): it
    // is counted under that source from now on; *verdict is the answer to send.
    bool on_source(WorkerSlot& w, const SourceMsg& m, Verdict* verdict, std::string* err);
    // An established connection `from` holds moves to `to` (rollover): its record goes along,
    // counted for its source as before. False when `from` does not hold it or it is in its
    // hello phase.
    bool transfer(WorkerSlot& from, WorkerSlot& to, std::uint32_t id, std::string* err);
    // An upgrade's hand-over, in the old parent: the established connection leaves `from`
    // for the new parent (*out keeps its record, no longer counted for its source), and
    // comes back with put() if the new parent has no room.
    bool take(WorkerSlot& from, std::uint32_t id, HeldConnection* out, std::string* err);
    void put(WorkerSlot& to, std::uint32_t id, const HeldConnection& c);
    // An id `to` does not hold, and then an established connection taken over under it (from
    // an upgrade's old parent, or a rollover's whose old worker ended), counted for `key` when
    // key.counted (never refused, no source-rate token: it was admitted once already).
    std::uint32_t fresh_id(const WorkerSlot& to);
    void adopt(WorkerSlot& to, std::uint32_t id, SourceKey key, std::int64_t accepted_ns);
    // The key an established connection from `source` is counted under (counted: to be
    // counted). AF_UNSPEC (a balancer's PROXY LOCAL) is not counted, as on accept.
    SourceKey key_for(const sockaddr_storage& source) const;
    // Some worker would take a connection but for its full channel.
    bool room_when_writable() const;
    // The worker is gone: each connection it held is released.
    void worker_gone(const WorkerSlot& w);
    // Counting per source (nullptr: nothing counted, as in tests of the hand-over alone).
    void set_limits(SourceLimits* limits) { limits_ = limits; }
    // Under pressure the hello-phase connections are shed down to shed_stop_percent of this.
    void set_capacity(std::size_t capacity) { capacity_ = capacity; }
    // When the hello-phase connections not yet shed reach shed_start_percent of the capacity,
    // asks their workers to close the ones choose_shed() picks. Returns how many.
    std::size_t shed_if_needed();
    std::size_t hellos() const { return hellos_; }
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
    void release(const HeldConnection& c);
    SourceLimits::Clock::time_point now() const;

    WorkerList& workers_;
    std::size_t max_per_worker_;
    Clock& clock_;
    std::deque<Pending> pending_;
    std::size_t next_ = 0; // rotation: ties go to the first worker at or after this index
    std::int64_t paused_until_ns_ = 0;
    bool stopped_ = false;
    SourceLimits* limits_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t hellos_ = 0; // held, in the hello phase, not shed
    std::uint32_t next_id_ = 1;
};

} // namespace sniproxy
