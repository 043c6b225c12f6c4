// workers.h: what the parent knows of each worker, and the seams through which the dispatcher
// and the supervisor reach the outside world (a worker's channel, process creation, the
// clock). parent.cc implements them with libevent and fork/exec; the unit tests with fakes.
#pragma once

#include "channel.h"
#include "metrics_schema.h"
#include "protocol.h"

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace sniproxy {

// The parent's end of one worker's channel. Sends return 0 or an errno value (EAGAIN: full).
class WorkerChannel {
public:
    virtual ~WorkerChannel() = default;
    virtual int send_connections(std::span<const int> fds, std::span<const ConnectionInfo> infos)
        = 0;
    virtual int send(const Encoded& message) = 0;
    // A moving message with its descriptors (client, backend[, pipe]).
    virtual int send_moving(const Encoded& message, std::span<const int> fds)
    {
        (void)message, (void)fds;
        return ENOTSUP;
    }
    // Asks to be told (Parent -> Dispatcher::on_room) when the channel has room again.
    virtual void wait_for_room() = 0;
};

// The channel between the old and the new parent of a SIGUSR2 upgrade (SOCK_SEQPACKET, the
// workers' framing): moving messages go from the old parent to the new one, and back when
// the new one has no room. Returns 0 or an errno value (EAGAIN: full).
class UpgradeLink {
public:
    virtual ~UpgradeLink() = default;
    virtual int send_moving(const Encoded& message, std::span<const int> fds) = 0;
    // Asks to be told (Supervisor::retry_moves) when the channel has room again.
    virtual void wait_for_room() = 0;
};

// What the parent keeps of each connection a worker holds, by id, until the worker reports it
// closed (or dies): the source it is counted under and whether it is still in its hello phase.
struct HeldConnection {
    SourceKey key;
    std::int64_t accepted_ns = 0;
    bool in_hello = true;
    bool shed = false; // the worker was asked to close it
    bool moved = false; // its real source came from the worker (SourceMsg)
    bool from_balancer = false; // only these may have their source reported
    // Handed over and waiting in the parent (a full channel): the worker no longer has it,
    // so a second hand-over or a closed report for it is a lie.
    bool in_transit = false;
};

struct WorkerSlot {
    pid_t pid = -1;
    std::unique_ptr<WorkerChannel> channel;
    unsigned generation = 0;
    std::size_t inflight = 0; // handed over and not yet reported closed
    // The connections handed over, by id (at most -c of them, as inflight).
    std::unordered_map<std::uint32_t, HeldConnection> held;
    std::vector<VerdictMsg> verdicts_owed; // answers that found the channel full
    bool ready = false;
    bool draining = false;
    bool drain_owed = false; // the drain message waits for room in the channel
    bool superseded = false; // killed by a rollover before it was ready
    bool waiting_for_room = false; // a send found the channel full; skipped until it has room
    bool violated = false; // broke the protocol: being replaced, nothing more is read from it
    bool broken = false; // its channel failed for good: no more connections, replaced on exit
    bool reaped = false; // waitpid returned it: its pid may belong to someone else now
    std::int64_t started_ns = 0;
    std::int64_t drain_deadline_ns = 0; // when draining: killed if still alive then
    // Log records per second, so that a hijacked worker cannot flood the log.
    std::int64_t log_window_ns = 0;
    std::uint32_t log_records = 0;
    std::uint64_t log_suppressed = 0;
    std::size_t moved_in = 0, moved_out = 0, moves_refused = 0; // established connections
    int metrics_slot = -1; // its slot in the metrics region (-1: none)
    WorkerState metrics_state = WorkerState::starting; // as last written there
    std::size_t metrics_moved_in = 0; // moved_in as last counted there
};
using WorkerList = std::vector<std::unique_ptr<WorkerSlot>>;

class Spawner {
public:
    virtual ~Spawner() = default;
    // Starts a worker of `generation`; fills out->pid and out->channel.
    virtual bool spawn_worker(unsigned generation, WorkerSlot* out, std::string* err) = 0;
    // SIGUSR2: starts the binary at its start-up path with our listening sockets.
    virtual bool spawn_upgrade(pid_t* pid, std::string* err) = 0;
    virtual void kill(pid_t pid, int sig) = 0;
};

class Clock {
public:
    virtual ~Clock() = default;
    virtual std::int64_t now_ns() = 0;
};

class MonotonicClock final : public Clock {
public:
    std::int64_t now_ns() override { return monotonic_ns(); }
};

} // namespace sniproxy
