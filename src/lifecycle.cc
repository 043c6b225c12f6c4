// lifecycle.cc: the parent's supervision of its workers: generations and rollover (SIGHUP),
// stop (SIGTERM/SIGINT), binary upgrade (SIGUSR2), reaping and respawning with back-off.
// Accepting and dispatching live in parent.cc.
#include "parent.h"

#include "channel.h"
#include "log.h"
#include "spawn.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sniproxy {

namespace {
    constexpr std::int64_t crash_window_ns = 2'000'000'000; // died this young: a crash loop
    constexpr std::int64_t max_respawn_delay_ms = 30'000;
    // A draining worker enforces the grace itself; the parent steps in this much later.
    constexpr std::int64_t backstop_margin_s = 2;

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

    timeval ms_to_timeval(std::int64_t ms)
    {
        return { static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000) };
    }
} // namespace

// When every worker of the newest generation is ready, older generations drain.
void Parent::check_generation_ready()
{
    int ready = 0;
    for (auto& w : workers_)
        ready += w->generation == generation_ && w->ready && !w->draining;
    if (ready < worker_count_) {
        flush_pending();
        return;
    }
    // The crash loop logged loudly; so does its end. The delay itself is only reset when a
    // worker outlives the crash window (worker_exited): a worker that dies soon after saying
    // ready is still part of the loop and must keep doubling the delay.
    if (respawn_delay_ms_ > 0 && !recovery_logged_) {
        logf(LogLevel::notice, "generation %u: all %d worker(s) ready again", generation_,
            worker_count_);
        recovery_logged_ = true;
    }
    if (invocation_.upgrade_from > 0) {
        // We are the new binary and can serve: the old parent may stop accepting and drain.
        logf(LogLevel::notice, "upgrade: serving; asking the old parent %d to drain and exit",
            static_cast<int>(invocation_.upgrade_from));
        kill(invocation_.upgrade_from, SIGTERM);
        invocation_.upgrade_from = 0;
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
    flush_pending();
}

// Tells a worker to take no more connections, finish its open ones within the grace and exit;
// the parent kills it if it is still alive a little after that.
void Parent::drain(Worker& w)
{
    w.draining = true;
    w.drain_owed = true;
    send_drain(w);
    w.drain_deadline_ns
        = monotonic_ns() + (std::int64_t { options_.grace } + backstop_margin_s) * 1'000'000'000;
    arm_backstop();
}

// A full channel (a busy worker) must not lose the drain message: it is sent again when the
// channel has room (on_worker_writable).
void Parent::send_drain(Worker& w)
{
    const std::uint32_t grace = static_cast<std::uint32_t>(options_.grace);
    const int err = send_message(w.channel.get(), Msg::drain,
        { reinterpret_cast<const std::uint8_t*>(&grace), sizeof grace });
    if (err == EAGAIN) {
        event_add(w.write_event.get(), nullptr);
        return;
    }
    w.drain_owed = false; // sent, or the worker is gone (SIGCHLD follows; the backstop stays)
}

// The backstop fires at the earliest deadline of the draining workers (each keeps its own, so
// SIGHUPs in quick succession postpone nobody's).
void Parent::arm_backstop()
{
    std::int64_t earliest = 0;
    for (auto& w : workers_)
        if (w->draining && w->drain_deadline_ns > 0
            && (earliest == 0 || w->drain_deadline_ns < earliest))
            earliest = w->drain_deadline_ns;
    evtimer_del(kill_event_.get());
    if (earliest == 0)
        return;
    const timeval in
        = ms_to_timeval(std::max<std::int64_t>(0, earliest - monotonic_ns()) / 1'000'000 + 1);
    evtimer_add(kill_event_.get(), &in);
}

void Parent::on_signal(evutil_socket_t sig, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    switch (sig) {
    case SIGCHLD:
        self->reap_children();
        break;
    case SIGHUP:
        self->rollover();
        break;
    case SIGUSR2:
        self->upgrade();
        break;
    default:
        self->stop(self->stopping_);
        break; // a second SIGTERM/SIGINT: at once
    }
}

void Parent::rollover()
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
    const bool superseded = ready < worker_count_ && older_serving;
    for (auto& w : workers_) {
        if (w->generation != generation_ || w->draining)
            continue;
        if (!w->ready) {
            w->draining = w->superseded = true;
            kill(w->pid, SIGKILL);
        } else if (superseded) {
            drain(*w);
        }
    }
    generation_++;
    // A new generation starts with a clean slate: no pending respawn, no back-off.
    evtimer_del(respawn_event_.get());
    respawn_needed_ = 0;
    respawn_delay_ms_ = 0;
    logf(LogLevel::notice, "SIGHUP: starting generation %u (%d workers)", generation_,
        worker_count_);
    for (int i = 0; i < worker_count_; i++)
        spawn_worker(generation_);
}

void Parent::stop(bool immediately)
{
    if (!stopping_) {
        flush_pending(); // connections already accepted still get served
        stopping_ = true;
        set_accepting(false);
        listen_events_.clear();
        listeners_.clear(); // new clients are refused from now on
        logf(LogLevel::notice, "stopping: draining %zu worker(s), grace %d s", workers_.size(),
            options_.grace);
    }
    for (auto& w : workers_) {
        if (immediately)
            kill(w->pid, SIGKILL);
        else if (!w->draining)
            drain(*w);
    }
    if (workers_.empty() || immediately)
        event_base_loopbreak(base_.get());
}

// SIGUSR2: start the binary now at the start-up path, handing it our listening sockets
// (systemd's LISTEN_FDS protocol). When its workers are ready it sends us SIGTERM and we
// drain as on any stop. Both accept from the same sockets meanwhile, so nothing is refused.
void Parent::upgrade()
{
    if (stopping_ || upgrade_child_ > 0) {
        logf(LogLevel::warning, "SIGUSR2 ignored: %s",
            stopping_ ? "stopping" : "an upgrade is under way");
        return;
    }
    std::vector<int> fds;
    for (const UniqueFd& l : listeners_)
        fds.push_back(l.get());
    upgrade_child_ = spawn({ invocation_.exe, invocation_.args, fds, true,
        { "SNIPROXYD_UPGRADE_FROM=" + std::to_string(getpid()) }, /* isolate */ false });
    if (upgrade_child_ < 0)
        logf(LogLevel::err, "SIGUSR2: cannot start %s: %s", invocation_.exe.c_str(),
            std::strerror(errno));
    else
        logf(LogLevel::notice,
            "SIGUSR2: started %s as pid %d; it takes over when its workers are ready",
            invocation_.exe.c_str(), static_cast<int>(upgrade_child_));
}

// Draining workers that outlive the grace (plus a margin for their own grace handling).
void Parent::on_force_kill(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    const std::int64_t now = monotonic_ns();
    for (auto& w : self->workers_) {
        if (w->draining && w->drain_deadline_ns > 0 && w->drain_deadline_ns <= now) {
            logf(LogLevel::warning, "worker %d still running after the grace: killing it",
                static_cast<int>(w->pid));
            kill(w->pid, SIGKILL);
            w->drain_deadline_ns = 0; // killed once; reaped soon
        }
    }
    self->arm_backstop();
}

void Parent::reap_children()
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        auto it = std::find_if(
            workers_.begin(), workers_.end(), [pid](auto& w) { return w->pid == pid; });
        if (pid == upgrade_child_) {
            logf(LogLevel::err, "upgrade failed: the new binary (pid %d) %s; still serving",
                static_cast<int>(pid), describe_status(status).c_str());
            upgrade_child_ = -1;
            continue;
        }
        if (it == workers_.end())
            continue;
        std::unique_ptr<Worker> w = std::move(*it);
        workers_.erase(it);
        read_worker(*w); // its last log records may still sit in the channel
        worker_exited(std::move(w), status);
    }
}

void Parent::worker_exited(std::unique_ptr<Worker> w, int status)
{
    const bool expected = w->draining || stopping_;
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const bool killed_by_us = w->superseded && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    const LogLevel level = expected && (clean || killed_by_us) ? LogLevel::debug : LogLevel::err;
    logf(level, "worker %d (generation %u) %s%s", static_cast<int>(w->pid), w->generation,
        describe_status(status).c_str(),
        w->inflight && !expected
            ? (", " + std::to_string(w->inflight) + " of its connections lost").c_str()
            : "");
    if (stopping_) {
        if (workers_.empty())
            event_base_loopbreak(base_.get());
        return;
    }
    if (expected || w->generation != generation_) {
        flush_pending();
        return;
    }
    // Replace it, backing off when workers die young again and again.
    const bool young = monotonic_ns() - w->started_ns < crash_window_ns;
    respawn_delay_ms_
        = young ? std::clamp<std::int64_t>(respawn_delay_ms_ * 2, 100, max_respawn_delay_ms) : 0;
    recovery_logged_ = !young;
    if (young)
        logf(LogLevel::err,
            "worker %d died within 2 s of starting: next start in %lld ms, doubling "
            "while workers keep dying young (see the log above)",
            static_cast<int>(w->pid), static_cast<long long>(respawn_delay_ms_));
    respawn_needed_++;
    const timeval delay = ms_to_timeval(respawn_delay_ms_);
    if (!evtimer_pending(respawn_event_.get(), nullptr))
        evtimer_add(respawn_event_.get(), &delay);
    update_accepting();
}

void Parent::on_respawn(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    for (; self->respawn_needed_ > 0 && !self->stopping_; self->respawn_needed_--)
        self->spawn_worker(self->generation_);
    self->respawn_needed_ = 0;
}

} // namespace sniproxy
