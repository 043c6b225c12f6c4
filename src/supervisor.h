// supervisor.h: the life of the workers: generations and rollover (SIGHUP), drain with a
// backstop deadline, respawn with back-off, stop (SIGTERM/SIGINT), binary upgrade (SIGUSR2),
// and the parent's side of the protocol (a worker that breaks it is replaced). Plain state
// and decisions; parent.cc calls these from libevent callbacks and arms its timers from
// next_respawn_ns() and next_backstop_ns().
#pragma once

#include "dispatcher.h"
#include "workers.h"

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

namespace sniproxy {

class Supervisor {
public:
    struct Settings {
        int worker_count = 1;
        int grace_s = 10;
        pid_t upgrade_from = 0; // we are the new binary of an upgrade: the old parent's pid
        bool move_connections = true; // a rollover's old workers hand theirs over
    };
    Supervisor(WorkerList& workers, Dispatcher& dispatcher, Spawner& spawner, Clock& clock,
        Settings settings);

    bool start(std::string* err); // generation 1
    // One message from worker `w`. False when it broke the protocol: it is being replaced and
    // nothing more should be read from it.
    bool on_message(WorkerSlot& w, Received& m);
    // Replaces a worker that broke the protocol (logged at err, killed, respawned as if died).
    void violation(WorkerSlot& w, const std::string& why);
    void on_room(WorkerSlot& w); // its channel has room: a drain message that waited leaves
    void rollover(); // SIGHUP
    void stop(bool immediately); // SIGTERM, SIGINT; a second one: immediately
    void upgrade(); // SIGUSR2
    void set_move_connections(bool on) { settings_.move_connections = on; }
    // The channel of a SIGUSR2 upgrade (nullptr: none, or closed). The old parent
    // (`to_successor`) drains with moving when it stops, and the established connections go
    // to the new parent; the new parent takes them over (or gives them back, no room).
    void set_upgrade_link(UpgradeLink* link, bool to_successor);
    // One message on the upgrade channel. False when it broke the protocol (logged at err):
    // the caller closes the channel; nothing else changes.
    bool on_upgrade_message(Received& m);
    bool upgrade_link_open() const { return upgrade_link_ != nullptr; }
    // A worker's channel or the upgrade channel has room again: moves that waited go on.
    void retry_moves();
    // Moves that wait for room in a channel, at most per queue (beyond: given back).
    static constexpr std::size_t max_queued_moves = 16384;
    // Descriptors the queues may hold together (the parent passes a share of RLIMIT_NOFILE,
    // leaving the rest for accepting); beyond, a move is treated as finding no room.
    void set_queued_fd_budget(std::size_t n) { fd_budget_ = n; }
    std::size_t queued_fds() const { return queued_fds_; }
    // A moving message from worker `w` whose descriptors were cut on arrival (we are out of
    // them): the connection is lost, not the worker's fault; its record is released. False
    // (a violation, already handled) when the id is not one it could hand over.
    bool on_moving_cut(WorkerSlot& w, std::uint32_t id);
    // The same on the upgrade channel: the connection is lost, the channel stays open.
    void on_upgrade_cut(std::uint32_t id);
    std::size_t moves_cut() const { return moves_cut_; }
    // The new parent: connections taken over from the old one, and given back for want of room.
    std::size_t moved_from_upgrade() const { return moved_from_upgrade_; }
    std::size_t upgrade_refused() const { return upgrade_refused_; }
    // A child was reaped (a worker, the upgrade's new binary, or someone else's).
    void child_exited(pid_t pid, int status);
    // The time is `clock.now_ns()`: respawns that are due start, hung drainers are killed.
    void tick();

    WorkerSlot* find(pid_t pid) const;
    std::int64_t next_respawn_ns() const { return respawn_at_ns_; }
    // When tick() is next due for a hung drainer or for reporting suppressed log records.
    std::int64_t next_backstop_ns() const;
    std::int64_t respawn_delay_ms() const { return respawn_delay_ms_; }
    unsigned generation() const { return generation_; }
    bool stopping() const { return stopping_; }
    // Stopped and every worker gone (or killed), and nothing left to send to an upgrade's new
    // parent.
    bool finished() const { return finished_ && (up_queue_.empty() || !upgrade_link_); }

    // Log records a worker may send per second; the rest are counted and reported. Above
    // the most connections one worker has been measured to serve (about 16,000 a second,
    // bench/RESULTS.md), so only a flood loses lines.
    static constexpr std::uint32_t max_records_per_second = 20'000;

private:
    bool spawn_worker();
    bool admit_record(WorkerSlot& w);
    void report_suppressed(WorkerSlot& w);
    void check_generation_ready();
    void drain(WorkerSlot& w);
    void send_drain(WorkerSlot& w);
    void send_verdict(WorkerSlot& w, const VerdictMsg& m);
    bool forward_moving(WorkerSlot& w, Received& m, const MovingMsg& c, std::string* err);
    bool give_back(WorkerSlot& w, Received& m, std::uint32_t id, std::string* err);
    // The upgrade (supervisor_upgrade.cc).
    struct SentUp {
        pid_t pid = -1;
        HeldConnection held;
    };
    struct QueuedUp {
        std::unique_ptr<Received> m;
        std::uint32_t id = 0;
        pid_t pid = -1; // the rollover's and a give-back's: the old worker it came from
        HeldConnection held; // the rollover's: its record when queued (counted for its source)
        std::int64_t queued_ns = 0; // dropped (given back, or lost) a grace later
    };
    using Queue = std::deque<QueuedUp>;
    // supervisor_queues.cc: every queue's entries counted against max_queued_moves and the
    // descriptor budget; false when full (the caller gives back or loses `m`, untouched).
    bool enqueue(Queue& q, Received& m, std::uint32_t id, pid_t pid, const HeldConnection& held);
    QueuedUp dequeue(Queue& q); // the front, out of the count
    void drop_queued(const WorkerSlot& w);
    void expire_queues(std::int64_t now);
    std::int64_t next_queue_expiry() const;
    void retry_give_backs();
    void send_failed(WorkerSlot& to, int error); // broken, or wait for room
    void retry_send_backs();
    enum class Adopt { done, wait, no_room, error };
    Adopt try_forward(WorkerSlot& w, Received& m, std::uint32_t id, std::string* err);
    bool queue_rollover(WorkerSlot& w, Received& m, std::uint32_t id, std::string* err);
    void retry_rollover_queue();
    void close_upgrade_link();
    void expire_upgrade_queue(std::int64_t now);
    // The grace and the margin after which the parent steps in (a draining worker enforces the
    // grace itself).
    std::int64_t grace_ns() const
    {
        return (std::int64_t { settings_.grace_s } + 2) * 1'000'000'000;
    }
    bool move_to_successor(WorkerSlot& w, Received& m, const MovingMsg& c, std::string* err);
    bool return_to_worker(Received& m, std::uint32_t id, const SentUp& sent);
    bool adopt_or_queue(Received& m, const MovingMsg& c, std::string* err);
    Adopt try_adopt(Received& m, const MovingMsg& c, const SourceKey& key, std::string* err);
    void send_back(Received& m);
    bool take_back(Received& m, const MovingMsg& c, std::string* err);
    void worker_exited(const WorkerSlot& w, int status);

    WorkerList& workers_;
    Dispatcher& dispatcher_;
    Spawner& spawner_;
    Clock& clock_;
    Settings settings_;
    unsigned generation_ = 0;
    pid_t upgrade_child_ = -1; // the new binary started by SIGUSR2, until it takes over
    int respawn_needed_ = 0;
    std::int64_t respawn_at_ns_ = 0;
    std::int64_t respawn_delay_ms_ = 0;
    bool recovery_logged_ = false; // the end of the current crash loop was logged
    bool stopping_ = false;
    bool finished_ = false;
    UpgradeLink* upgrade_link_ = nullptr;
    bool to_successor_ = false; // we are the old parent of the upgrade
    // The old parent: connections sent to the new one, by id, with the worker they came from,
    // until they come back for want of room (never, mostly; forgotten when the channel closes),
    // and those that wait for room in the channel, in order.
    std::unordered_map<std::uint32_t, SentUp> sent_up_;
    Queue up_queue_;
    std::int64_t queue_deadline_ns_ = 0; // when stopping: what still waits then is dropped
    // A rollover's moves that wait for room in a new worker's channel.
    Queue rollover_queue_;
    // The new parent: connections taken over that wait for room in a worker's channel.
    Queue adopt_queue_;
    // Give-backs that wait for room: to an old worker's channel, to the upgrade channel.
    Queue give_back_queue_, send_back_queue_;
    std::size_t queued_fds_ = 0, fd_budget_ = SIZE_MAX;
    std::size_t moved_from_upgrade_ = 0, upgrade_refused_ = 0, moves_cut_ = 0;
};

// "exited with status 1", "killed by signal 9 (Killed)", ...
std::string describe_status(int status);

} // namespace sniproxy
