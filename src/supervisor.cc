// supervisor.cc: generations, drain, back-off, respawn, stop and upgrade, and the parent's
// side of the protocol. Worker records are untrusted: every message is decoded and checked
// against what this worker may say now.
#include "supervisor.h"

#include "log.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <variant>

namespace sniproxy {

namespace {
    constexpr std::int64_t crash_window_ns = 2'000'000'000; // died this young: a crash loop
    constexpr std::int64_t max_respawn_delay_ms = 30'000;
} // namespace

std::string describe_status(int status)
{
    if (WIFEXITED(status))
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        std::string s = "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
        if (sig == SIGSYS)
            s += ": a system call outside the seccomp allowlist; rebuild with "
                 "--enable-seccomp-debug to see which";
        return s;
    }
    return "ended (status " + std::to_string(status) + ")";
}

Supervisor::Supervisor(
    WorkerList& workers, Dispatcher& dispatcher, Spawner& spawner, Clock& clock, Settings settings)
    : workers_(workers)
    , dispatcher_(dispatcher)
    , spawner_(spawner)
    , clock_(clock)
    , settings_(settings)
{
}

bool Supervisor::start(std::string* err)
{
    generation_ = 1;
    for (int i = 0; i < settings_.worker_count; i++) {
        if (!spawn_worker()) {
            *err = "cannot start the workers";
            return false;
        }
    }
    return true;
}

bool Supervisor::spawn_worker()
{
    auto w = std::make_unique<WorkerSlot>();
    std::string err;
    if (!spawner_.spawn_worker(generation_, w.get(), &err)) {
        logf(LogLevel::err, "%s", err.c_str());
        return false;
    }
    w->generation = generation_;
    w->started_ns = clock_.now_ns();
    logf(LogLevel::debug, "worker %d started (generation %u)", static_cast<int>(w->pid),
        generation_);
    workers_.push_back(std::move(w));
    return true;
}

WorkerSlot* Supervisor::find(pid_t pid) const
{
    for (const auto& w : workers_)
        if (w->pid == pid)
            return w.get();
    return nullptr;
}

bool Supervisor::on_message(WorkerSlot& w, Received& m)
{
    if (w.violated)
        return false;
    FromWorker msg;
    std::string err;
    if (!decode_from_worker(m, &msg, &err)) {
        violation(w, err);
        return false;
    }
    if (const auto* log = std::get_if<LogMsg>(&msg)) {
        if (admit_record(w))
            log_record_of(w.pid, log->level, sanitize_log_text(log->text, 900, false));
    } else if (const auto* closed = std::get_if<ClosedMsg>(&msg)) {
        if (!dispatcher_.on_closed(w, closed->span(), &err)) {
            violation(w, err);
            return false;
        }
    } else if (const auto* hello = std::get_if<HelloDoneMsg>(&msg)) {
        if (!dispatcher_.on_hello_done(w, hello->span(), &err)) {
            violation(w, err);
            return false;
        }
    } else if (const auto* source = std::get_if<SourceMsg>(&msg)) {
        VerdictMsg answer { source->id };
        if (!dispatcher_.on_source(w, *source, &answer.verdict, &err)) {
            violation(w, err);
            return false;
        }
        send_verdict(w, answer);
    } else if (const auto* moving = std::get_if<MovingMsg>(&msg)) {
        if (!forward_moving(w, m, *moving, &err)) {
            violation(w, err);
            return false;
        }
    } else if (w.ready) {
        violation(w, "ready twice");
        return false;
    } else {
        w.ready = true;
        check_generation_ready();
    }
    return true;
}

// OpenSSH's monitor answers an unpermitted request with fatal(); we replace the worker: it gets
// no more connections, is killed, and is respawned as any worker that died.
void Supervisor::violation(WorkerSlot& w, const std::string& why)
{
    logf(LogLevel::err, "worker %d: protocol violation: %s; replacing it", static_cast<int>(w.pid),
        why.c_str());
    w.ready = false;
    w.violated = true;
    if (!w.reaped) // a pid already reaped may have been given to another process
        spawner_.kill(w.pid, SIGKILL);
    drop_queued(w);
    dispatcher_.flush_pending();
}

// When every worker of the newest generation is ready, older generations drain.
void Supervisor::check_generation_ready()
{
    int ready = 0;
    for (auto& w : workers_)
        ready += w->generation == generation_ && w->ready && !w->draining;
    if (ready < settings_.worker_count) {
        dispatcher_.flush_pending();
        return;
    }
    // The crash loop logged loudly; so does its end. The delay itself is only reset when a
    // worker outlives the crash window (worker_exited): a worker that dies soon after saying
    // ready is still part of the loop and must keep doubling the delay.
    if (respawn_delay_ms_ > 0 && !recovery_logged_) {
        logf(LogLevel::notice, "generation %u: all %d worker(s) ready again", generation_,
            settings_.worker_count);
        recovery_logged_ = true;
    }
    if (settings_.upgrade_from > 0) {
        // We are the new binary and can serve: the old parent may stop accepting and drain.
        logf(LogLevel::notice, "upgrade: serving; asking the old parent %d to drain and exit",
            static_cast<int>(settings_.upgrade_from));
        spawner_.kill(settings_.upgrade_from, SIGTERM);
        settings_.upgrade_from = 0;
    }
    std::string old;
    for (auto& w : workers_) {
        if (w->generation == generation_ || w->draining)
            continue;
        drain(*w);
        old += " " + std::to_string(w->pid);
    }
    if (!old.empty())
        logf(LogLevel::notice, "generation %u serving; draining old workers:%s", generation_,
            old.c_str());
    dispatcher_.flush_pending();
}

// Tells a worker to take no more connections, finish its open ones within the grace and exit;
// it is killed if still alive a little after that (each worker has its own deadline, so
// SIGHUPs in quick succession postpone nobody's).
void Supervisor::drain(WorkerSlot& w)
{
    w.draining = true;
    w.drain_owed = true;
    send_drain(w);
    w.drain_deadline_ns = clock_.now_ns() + grace_ns();
}

// A full channel (a busy worker) must not lose the drain message: it is sent again when the
// channel has room (on_room).
void Supervisor::send_drain(WorkerSlot& w)
{
    // Stopping, there is nowhere to go, unless an upgrade's new parent takes them.
    const bool successor = upgrade_link_ && to_successor_;
    const DrainMsg m { static_cast<std::uint32_t>(settings_.grace_s),
        settings_.move_connections && (!stopping_ || successor) };
    const int err = w.channel->send(encode(m));
    if (err == EAGAIN) {
        w.waiting_for_room = true;
        w.channel->wait_for_room();
        return;
    }
    w.drain_owed = false; // sent, or the worker is gone (SIGCHLD follows; the backstop stays)
}

// A verdict that finds the channel full waits for room, in order: the connection it answers
// waits for it (within its hello deadline).
void Supervisor::send_verdict(WorkerSlot& w, const VerdictMsg& m)
{
    if (w.verdicts_owed.empty()) {
        const int err = w.channel->send(encode(m));
        if (err != EAGAIN)
            return; // sent, or the worker is gone
    }
    w.verdicts_owed.push_back(m);
    w.waiting_for_room = true;
    w.channel->wait_for_room();
}

void Supervisor::on_room(WorkerSlot& w)
{
    std::size_t sent = 0;
    for (; sent < w.verdicts_owed.size(); sent++)
        if (w.channel->send(encode(w.verdicts_owed[sent])) == EAGAIN)
            break;
    w.verdicts_owed.erase(
        w.verdicts_owed.begin(), w.verdicts_owed.begin() + static_cast<std::ptrdiff_t>(sent));
    if (!w.verdicts_owed.empty()) {
        w.channel->wait_for_room();
        return;
    }
    if (w.drain_owed)
        send_drain(w);
}

std::int64_t Supervisor::next_backstop_ns() const
{
    std::int64_t earliest = 0;
    const auto consider = [&earliest](std::int64_t at) {
        if (at > 0 && (earliest == 0 || at < earliest))
            earliest = at;
    };
    for (auto& w : workers_) {
        if (w->draining)
            consider(w->drain_deadline_ns);
        // Suppressed log records are reported when their second is over, flood or not.
        if (w->log_suppressed)
            consider(w->log_window_ns + 1'000'000'000);
    }
    consider(up_queue_.empty() ? 0 : queue_deadline_ns_);
    consider(next_queue_expiry());
    return earliest;
}

void Supervisor::rollover()
{
    if (stopping_)
        return;
    // A generation that never became ready is replaced too: its workers that are not ready
    // hold no connections and are killed; the ready ones drain while an older generation
    // still serves. So rapid SIGHUPs leave at most the serving and the newest generation.
    int ready = 0;
    bool older_serving = false;
    for (auto& w : workers_) {
        ready += w->generation == generation_ && w->ready && !w->draining;
        older_serving |= w->generation != generation_ && w->ready && !w->draining;
    }
    const bool superseded = ready < settings_.worker_count && older_serving;
    for (auto& w : workers_) {
        if (w->generation != generation_ || w->draining)
            continue;
        if (!w->ready && w->inflight == 0) {
            w->draining = w->superseded = true;
            spawner_.kill(w->pid, SIGKILL);
        } else if (!w->ready || superseded) {
            // Holding connections (a worker whose channel failed stays "ready" and keeps its
            // connections; one that never said ready holds none): it drains, bounded by -g.
            drain(*w);
        }
    }
    generation_++;
    // A new generation starts with a clean slate: no pending respawn, no back-off.
    respawn_at_ns_ = 0;
    respawn_needed_ = 0;
    respawn_delay_ms_ = 0;
    logf(LogLevel::notice, "SIGHUP: starting generation %u (%d workers)", generation_,
        settings_.worker_count);
    for (int i = 0; i < settings_.worker_count; i++)
        spawn_worker();
}

void Supervisor::stop(bool immediately)
{
    if (!stopping_) {
        dispatcher_.flush_pending(); // connections already accepted still get served
        stopping_ = true;
        queue_deadline_ns_ = clock_.now_ns() + grace_ns();
        dispatcher_.stop(); // new clients are refused from now on
        logf(LogLevel::notice, "stopping: draining %zu worker(s), grace %d s", workers_.size(),
            settings_.grace_s);
    }
    for (auto& w : workers_) {
        if (immediately)
            spawner_.kill(w->pid, SIGKILL);
        else if (!w->draining)
            drain(*w);
    }
    retry_moves(); // a rollover's that wait: back to their old workers, nowhere else to go
    if (workers_.empty() || immediately)
        finished_ = true;
}

void Supervisor::tick()
{
    const std::int64_t now = clock_.now_ns();
    expire_upgrade_queue(now);
    expire_queues(now);
    for (auto& w : workers_)
        if (w->log_suppressed && now - w->log_window_ns >= 1'000'000'000)
            report_suppressed(*w);
    // Draining workers that outlive the grace (plus a margin for their own grace handling).
    for (auto& w : workers_) {
        if (w->draining && w->drain_deadline_ns > 0 && w->drain_deadline_ns <= now) {
            logf(LogLevel::warning, "worker %d still running after the grace: killing it",
                static_cast<int>(w->pid));
            spawner_.kill(w->pid, SIGKILL);
            w->drain_deadline_ns = 0; // killed once; reaped soon
        }
    }
    if (respawn_at_ns_ > 0 && respawn_at_ns_ <= now) {
        respawn_at_ns_ = 0;
        for (; respawn_needed_ > 0 && !stopping_; respawn_needed_--)
            spawn_worker();
        respawn_needed_ = 0;
    }
}

void Supervisor::child_exited(pid_t pid, int status)
{
    if (pid == upgrade_child_) {
        logf(LogLevel::err, "upgrade failed: the new binary (pid %d) %s; still serving",
            static_cast<int>(pid), describe_status(status).c_str());
        upgrade_child_ = -1;
        return;
    }
    auto it
        = std::find_if(workers_.begin(), workers_.end(), [pid](auto& w) { return w->pid == pid; });
    if (it == workers_.end())
        return;
    std::unique_ptr<WorkerSlot> w = std::move(*it);
    workers_.erase(it);
    worker_exited(*w, status);
}

void Supervisor::worker_exited(const WorkerSlot& w, int status)
{
    dispatcher_.worker_gone(w); // its connections no longer count for their sources
    const bool expected = w.draining || stopping_;
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const bool killed_by_us = w.superseded && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    const LogLevel level = expected && (clean || killed_by_us) ? LogLevel::debug : LogLevel::err;
    // Connections a worker still held when it ended are lost whatever the reason (a crash,
    // a kill at the end of the grace): always said at err, with the count.
    const LogLevel lost_level = w.inflight ? LogLevel::err : level;
    std::string moved; // a rollover's hand-over: how many went on, how many had no room
    if (w.moved_out > 0 || w.moves_refused > 0)
        moved = ", " + std::to_string(w.moved_out) + " connection(s) moved to newer workers, "
            + std::to_string(w.moves_refused) + " kept for want of room";
    logf(lost_level, "worker %d (generation %u) %s%s%s", static_cast<int>(w.pid), w.generation,
        describe_status(status).c_str(), moved.c_str(),
        w.inflight ? (", " + std::to_string(w.inflight) + " of its connections lost").c_str()
                   : "");
    report_suppressed(const_cast<WorkerSlot&>(w));
    if (stopping_) {
        if (workers_.empty())
            finished_ = true;
        return;
    }
    if (expected || w.generation != generation_) {
        dispatcher_.flush_pending();
        return;
    }
    // Replace it, backing off when workers die young again and again.
    const bool young = clock_.now_ns() - w.started_ns < crash_window_ns;
    respawn_delay_ms_
        = young ? std::clamp<std::int64_t>(respawn_delay_ms_ * 2, 100, max_respawn_delay_ms) : 0;
    recovery_logged_ = !young;
    if (young)
        logf(LogLevel::err,
            "worker %d died within 2 s of starting: next start in %lld ms, doubling "
            "while workers keep dying young (see the log above)",
            static_cast<int>(w.pid), static_cast<long long>(respawn_delay_ms_));
    respawn_needed_++;
    if (respawn_at_ns_ == 0)
        respawn_at_ns_ = clock_.now_ns() + respawn_delay_ms_ * 1'000'000;
}

} // namespace sniproxy
