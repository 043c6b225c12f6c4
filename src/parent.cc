// parent.cc: accept, dispatch and supervise. Workers are started by fork + exec of this same
// binary (/proc/self/exe), so each gets a fresh address space and holds nothing but its
// channel: listeners are close-on-exec and never reach a worker.
#include "parent.h"

#include "channel.h"
#include "log.h"
#include "spawn.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sniproxy {

namespace {
    constexpr int accept_batch_max = 64;
    constexpr std::int64_t crash_window_ns = 2'000'000'000; // died this young: a crash loop
    constexpr std::int64_t max_respawn_delay_ms = 30'000;

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

    timeval ms_to_timeval(std::int64_t ms) { return { static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000) }; }
} // namespace

Parent::Parent(const Options& options, Invocation invocation, std::vector<UniqueFd> listeners,
    WorkerIdentity identity, std::size_t max_per_worker)
    : options_(options)
    , invocation_(std::move(invocation))
    , identity_(identity)
    , max_per_worker_(max_per_worker)
    , worker_count_(options.workers > 0 ? options.workers : std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)))
    , listeners_(std::move(listeners))
{
    event_config* cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    base_.reset(event_base_new_with_config(cfg));
    event_config_free(cfg);
}

Parent::~Parent() = default;

int Parent::run()
{
    if (!base_) {
        logf(LogLevel::err, "cannot create the event loop");
        return 1;
    }
    for (UniqueFd& l : listeners_)
        listen_events_.emplace_back(event_new(base_.get(), l.get(), EV_READ | EV_PERSIST, on_accept, this));
    for (int sig : { SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGUSR2 }) {
        signal_events_.emplace_back(evsignal_new(base_.get(), sig, on_signal, this));
        evsignal_add(signal_events_.back().get(), nullptr);
    }
    resume_event_.reset(evtimer_new(base_.get(), on_resume, this));
    respawn_event_.reset(evtimer_new(base_.get(), on_respawn, this));
    kill_event_.reset(evtimer_new(base_.get(), on_force_kill, this));
    generation_ = 1;
    for (int i = 0; i < worker_count_; i++) {
        if (!spawn_worker(generation_))
            return 1;
    }
    logf(LogLevel::notice, "started: %zu listener(s), %d worker(s), up to %zu connections each",
        listeners_.size(), worker_count_, max_per_worker_);
    event_base_dispatch(base_.get());
    // Tearing down the signal events restores the default actions; a late second SIGTERM
    // must not turn a clean exit into death by signal.
    for (int sig : { SIGHUP, SIGTERM, SIGINT, SIGUSR2 })
        signal(sig, SIG_IGN);
    logf(LogLevel::notice, "stopped");
    return 0;
}

bool Parent::spawn_worker(unsigned generation)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        logf(LogLevel::err, "socketpair for a worker: %s", std::strerror(errno));
        return false;
    }
    UniqueFd mine(sv[0]), theirs(sv[1]);
    // The worker's end becomes its fd 3; /proc/self/exe is the running binary even if the
    // file on disk was replaced, so a generation never mixes versions.
    const pid_t pid = spawn({ "/proc/self/exe",
        worker_arguments(options_, { 3, generation, identity_.uid, identity_.gid, identity_.jail }),
        { theirs.get() }, false, {} });
    if (pid < 0) {
        logf(LogLevel::err, "fork for a worker: %s", std::strerror(errno));
        return false;
    }
    auto w = std::make_unique<Worker>();
    w->pid = pid;
    w->channel = std::move(mine);
    w->generation = generation;
    w->started_ns = monotonic_ns();
    w->read_event.reset(event_new(base_.get(), w->channel.get(), EV_READ | EV_PERSIST, on_worker_readable, this));
    w->write_event.reset(event_new(base_.get(), w->channel.get(), EV_WRITE, on_worker_writable, this));
    event_add(w->read_event.get(), nullptr);
    logf(LogLevel::debug, "worker %d started (generation %u)", static_cast<int>(pid), generation);
    workers_.push_back(std::move(w));
    return true;
}

void Parent::on_accept(evutil_socket_t fd, short, void* arg) { static_cast<Parent*>(arg)->accept_batch(fd); }

void Parent::accept_batch(int listener)
{
    for (int i = 0; i < accept_batch_max && accepting_; i++) {
        UniqueFd fd(accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            const int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                // Out of descriptors: pause (never spin), say so once, retry in a second.
                if (!fd_exhausted_logged_)
                    logf(LogLevel::err, "accept: %s; pausing accepts (raise the descriptor limit?)",
                        std::strerror(err));
                fd_exhausted_logged_ = true;
                set_accepting(false);
                const timeval one_second { 1, 0 };
                evtimer_add(resume_event_.get(), &one_second);
                return;
            }
            if (err != ECONNABORTED && err != EINTR && err != EPROTO && err != EPERM)
                logf(LogLevel::warning, "accept: %s", std::strerror(err));
            continue;
        }
        fd_exhausted_logged_ = false;
        if (!dispatch(fd, monotonic_ns()))
            break;
    }
}

void Parent::on_resume(evutil_socket_t, short, void* arg) { static_cast<Parent*>(arg)->update_accepting(); }

Parent::Worker* Parent::least_loaded()
{
    Worker* best = nullptr;
    for (auto& w : workers_) {
        if (w->ready && !w->draining && w->inflight < max_per_worker_
            && !event_pending(w->write_event.get(), EV_WRITE, nullptr)
            && (!best || w->inflight < best->inflight))
            best = w.get();
    }
    return best;
}

// Hands the connection to the least-loaded worker; a full channel means the next one is
// tried. Our copy is closed only after a send succeeded. If no worker can take it now, it
// waits in `pending_` and accepting pauses: nothing is dropped.
bool Parent::dispatch(UniqueFd& fd, std::int64_t accepted_ns)
{
    while (Worker* w = least_loaded()) {
        const int err = send_connection(w->channel.get(), fd.get(), accepted_ns);
        if (err == 0) {
            w->inflight++;
            fd.reset();
            return true;
        }
        if (err == EAGAIN) {
            event_add(w->write_event.get(), nullptr); // skip it until it has room again
            continue;
        }
        // The worker is gone or broken (EPIPE, ...): no more connections for it; SIGCHLD
        // will tell us the rest.
        logf(LogLevel::warning, "worker %d: handing over a connection: %s", static_cast<int>(w->pid), std::strerror(err));
        w->ready = false;
    }
    pending_.push_back({ std::move(fd), accepted_ns });
    update_accepting();
    return false;
}

void Parent::flush_pending()
{
    while (!pending_.empty()) {
        Pending p = std::move(pending_.front());
        pending_.pop_front();
        if (!dispatch(p.fd, p.accepted_ns)) {
            // dispatch queued it at the back; keep the order of arrival.
            pending_.push_front(std::move(pending_.back()));
            pending_.pop_back();
            break;
        }
    }
    update_accepting();
}

void Parent::set_accepting(bool on)
{
    if (on == accepting_)
        return;
    accepting_ = on;
    for (auto& e : listen_events_)
        on ? event_add(e.get(), nullptr) : event_del(e.get());
}

void Parent::update_accepting()
{
    set_accepting(!stopping_ && pending_.empty() && least_loaded() != nullptr
        && !evtimer_pending(resume_event_.get(), nullptr));
}

void Parent::on_worker_writable(evutil_socket_t, short, void* arg) { static_cast<Parent*>(arg)->flush_pending(); }

void Parent::on_worker_readable(evutil_socket_t fd, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    for (auto& w : self->workers_) {
        if (w->channel.get() == fd) {
            self->read_worker(*w);
            return;
        }
    }
}

// Worker records are untrusted: sizes and levels are checked and text is escaped.
void Parent::read_worker(Worker& w)
{
    for (;;) {
        Received m;
        const Recv r = receive_message(w.channel.get(), m);
        if (r == Recv::again)
            return;
        if (r == Recv::eof || r == Recv::error) {
            event_del(w.read_event.get()); // it is exiting; SIGCHLD does the rest
            return;
        }
        if (r == Recv::invalid) {
            logf(LogLevel::warning, "worker %d: malformed message ignored", static_cast<int>(w.pid));
            continue;
        }
        if (m.type == Msg::log && m.payload_len >= 1 && m.payload[0] >= 3 && m.payload[0] <= 7) {
            const std::string_view text(reinterpret_cast<const char*>(m.payload + 1), m.payload_len - 1);
            log_line(static_cast<LogLevel>(m.payload[0]), sanitize_log_text(text, 900, false));
        } else if (m.type == Msg::closed && m.payload_len == sizeof(std::uint32_t)) {
            std::uint32_t n;
            std::memcpy(&n, m.payload, sizeof n);
            w.inflight -= std::min<std::size_t>(n, w.inflight);
            flush_pending();
        } else if (m.type == Msg::ready && !w.ready) {
            w.ready = true;
            check_generation_ready();
        } else {
            logf(LogLevel::warning, "worker %d: unexpected message ignored", static_cast<int>(w.pid));
        }
    }
}

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
        w->draining = true;
        const std::uint32_t grace = static_cast<std::uint32_t>(options_.grace);
        send_message(w->channel.get(), Msg::drain, { reinterpret_cast<const std::uint8_t*>(&grace), sizeof grace });
        old += " " + std::to_string(w->pid);
    }
    if (!old.empty()) {
        logf(LogLevel::notice, "generation %u serving; draining old workers:%s", generation_, old.c_str());
        const timeval backstop = ms_to_timeval(std::int64_t { options_.grace } * 1000 + 2000);
        evtimer_add(kill_event_.get(), &backstop);
    }
    flush_pending();
}

void Parent::on_signal(evutil_socket_t sig, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    switch (sig) {
    case SIGCHLD: self->reap_children(); break;
    case SIGHUP: self->rollover(); break;
    case SIGUSR2: self->upgrade(); break;
    default: self->stop(self->stopping_); break; // a second SIGTERM/SIGINT: at once
    }
}

void Parent::rollover()
{
    if (stopping_)
        return;
    // A generation that never became ready is replaced too; it holds no connections.
    for (auto& w : workers_) {
        if (w->generation == generation_ && !w->draining) {
            w->draining = !w->ready || w->draining;
            if (!w->ready)
                kill(w->pid, SIGKILL);
        }
    }
    generation_++;
    respawn_needed_ = 0;
    respawn_delay_ms_ = 0; // a new generation starts with a clean slate
    logf(LogLevel::notice, "SIGHUP: starting generation %u (%d workers)", generation_, worker_count_);
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
        logf(LogLevel::notice, "stopping: draining %zu worker(s), grace %d s", workers_.size(), options_.grace);
    }
    const std::uint32_t grace = static_cast<std::uint32_t>(options_.grace);
    for (auto& w : workers_) {
        if (immediately)
            kill(w->pid, SIGKILL);
        else if (!w->draining) {
            w->draining = true;
            send_message(w->channel.get(), Msg::drain, { reinterpret_cast<const std::uint8_t*>(&grace), sizeof grace });
        }
    }
    const timeval backstop = ms_to_timeval(std::int64_t { options_.grace } * 1000 + 2000);
    evtimer_add(kill_event_.get(), &backstop);
    if (workers_.empty() || immediately)
        event_base_loopbreak(base_.get());
}

// SIGUSR2: start the binary now at the start-up path, handing it our listening sockets
// (systemd's LISTEN_FDS protocol). When its workers are ready it sends us SIGTERM and we
// drain as on any stop. Both accept from the same sockets meanwhile, so nothing is refused.
void Parent::upgrade()
{
    if (stopping_ || upgrade_child_ > 0) {
        logf(LogLevel::warning, "SIGUSR2 ignored: %s", stopping_ ? "stopping" : "an upgrade is under way");
        return;
    }
    std::vector<int> fds;
    for (const UniqueFd& l : listeners_)
        fds.push_back(l.get());
    upgrade_child_ = spawn({ invocation_.exe, invocation_.args, fds, true,
        { "SNIPROXYD_UPGRADE_FROM=" + std::to_string(getpid()) } });
    if (upgrade_child_ < 0)
        logf(LogLevel::err, "SIGUSR2: cannot start %s: %s", invocation_.exe.c_str(), std::strerror(errno));
    else
        logf(LogLevel::notice, "SIGUSR2: started %s as pid %d; it takes over when its workers are ready",
            invocation_.exe.c_str(), static_cast<int>(upgrade_child_));
}

// Draining workers that outlive the grace (plus a margin for their own grace handling).
void Parent::on_force_kill(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    for (auto& w : self->workers_) {
        if (w->draining) {
            logf(LogLevel::warning, "worker %d still running after the grace: killing it", static_cast<int>(w->pid));
            kill(w->pid, SIGKILL);
        }
    }
}

void Parent::reap_children()
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        auto it = std::find_if(workers_.begin(), workers_.end(), [pid](auto& w) { return w->pid == pid; });
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
    const LogLevel level = expected && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? LogLevel::debug : LogLevel::err;
    logf(level, "worker %d (generation %u) %s%s", static_cast<int>(w->pid), w->generation,
        describe_status(status).c_str(),
        w->inflight && !expected ? (", " + std::to_string(w->inflight) + " of its connections lost").c_str() : "");
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
    respawn_delay_ms_ = young ? std::clamp<std::int64_t>(respawn_delay_ms_ * 2, 100, max_respawn_delay_ms) : 0;
    if (young)
        logf(LogLevel::err, "worker %d died within 2 s of starting: next start in %lld ms, doubling "
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
