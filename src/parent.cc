// parent.cc: accept and dispatch (lifecycle.cc supervises). Workers are started by fork + exec of
// this same binary (/proc/self/exe), so each gets a fresh address space and holds nothing but its
// channel: listeners are close-on-exec and never reach a worker.
#include "parent.h"

#include "channel.h"
#include "log.h"
#include "spawn.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sniproxy {

namespace {
    constexpr int accept_batch_max = 64;
} // namespace

Parent::Parent(const Options& options, Invocation invocation, std::vector<UniqueFd> listeners,
    WorkerIdentity identity, std::size_t max_per_worker)
    : options_(options)
    , invocation_(std::move(invocation))
    , identity_(identity)
    , max_per_worker_(max_per_worker)
    , worker_count_(options.workers > 0
              ? options.workers
              : static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))))
    , listeners_(std::move(listeners))
{
    event_config* cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    // Coalesces the epoll_ctl calls of one loop iteration: a descriptor handed from one
    // event to another (hello -> relay) costs no system call. We never dup() descriptors
    // that are registered, the one case the changelist gets wrong.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
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
        listen_events_.emplace_back(
            event_new(base_.get(), l.get(), EV_READ | EV_PERSIST, on_accept, this));
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
    w->read_event.reset(
        event_new(base_.get(), w->channel.get(), EV_READ | EV_PERSIST, on_worker_readable, this));
    w->write_event.reset(
        event_new(base_.get(), w->channel.get(), EV_WRITE, on_worker_writable, this));
    event_add(w->read_event.get(), nullptr);
    logf(LogLevel::debug, "worker %d started (generation %u)", static_cast<int>(pid), generation);
    workers_.push_back(std::move(w));
    return true;
}

void Parent::on_accept(evutil_socket_t fd, short, void* arg)
{
    static_cast<Parent*>(arg)->accept_batch(fd);
}

// Accepts what the backlog holds (up to accept_batch_max) and hands it over in messages of
// up to max_handover connections, so a busy parent and worker wake once per batch.
void Parent::accept_batch(int listener)
{
    Pending batch[max_handover];
    std::size_t n = 0;
    for (int i = 0; i < accept_batch_max && accepting_; i++) {
        ConnectionInfo info;
        socklen_t len = sizeof info.peer;
        UniqueFd fd(accept4(
            listener, reinterpret_cast<sockaddr*>(&info.peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            const int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                break;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                // Out of descriptors: pause (never spin), say so once, retry in a second.
                if (!fd_exhausted_logged_)
                    logf(LogLevel::err, "accept: %s; pausing accepts (raise the descriptor limit?)",
                        std::strerror(err));
                fd_exhausted_logged_ = true;
                set_accepting(false);
                const timeval one_second { 1, 0 };
                evtimer_add(resume_event_.get(), &one_second);
                break;
            }
            if (err != ECONNABORTED && err != EINTR && err != EPROTO && err != EPERM)
                logf(LogLevel::warning, "accept: %s", std::strerror(err));
            continue;
        }
        fd_exhausted_logged_ = false;
        info.accepted_ns = monotonic_ns();
        batch[n++] = { std::move(fd), info };
        if (n == max_handover) {
            const bool all = hand_over({ batch, n });
            n = 0;
            if (!all)
                break; // no worker has room: the rest waits in the backlog
        }
    }
    if (n > 0)
        hand_over({ batch, n });
}

void Parent::on_resume(evutil_socket_t, short, void* arg)
{
    static_cast<Parent*>(arg)->flush_pending(); // then accepting resumes if all went
}

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

// Hands connections to the least-loaded worker, as many in one message as it has room for;
// a full channel means the next worker is tried. Our copies are closed only after a send
// succeeded. What no worker can take now waits at the back of `pending_` and accepting
// pauses: nothing is dropped. Returns true when every connection was handed over.
bool Parent::hand_over(std::span<Pending> batch)
{
    std::size_t done = 0;
    while (done < batch.size()) {
        Worker* w = least_loaded();
        if (!w)
            break;
        const std::size_t k = std::min(batch.size() - done, max_per_worker_ - w->inflight);
        int fds[max_handover];
        ConnectionInfo infos[max_handover];
        for (std::size_t i = 0; i < k; i++) {
            fds[i] = batch[done + i].fd.get();
            infos[i] = batch[done + i].info;
        }
        const int err = send_connections(w->channel.get(), { fds, k }, { infos, k });
        if (err == 0) {
            w->inflight += k;
            for (std::size_t i = 0; i < k; i++)
                batch[done + i].fd.reset();
            done += k;
            continue;
        }
        if (err == EAGAIN) {
            event_add(w->write_event.get(), nullptr); // skip it until it has room again
            continue;
        }
        if (err == ENOBUFS || err == ENOMEM) {
            // The kernel is short of memory, not the worker at fault: keep the connections,
            // pause accepting for a second (as when out of descriptors), then try again.
            logf(LogLevel::warning, "handing over %zu connection(s): %s; retrying in a second", k,
                std::strerror(err));
            const timeval one_second { 1, 0 };
            evtimer_add(resume_event_.get(), &one_second);
            break;
        }
        // The worker is gone or broken (EPIPE, ...): no more connections for it; SIGCHLD
        // will tell us the rest.
        logf(LogLevel::warning, "worker %d: handing over %zu connection(s): %s",
            static_cast<int>(w->pid), k, std::strerror(err));
        w->ready = false;
    }
    if (done == batch.size())
        return true;
    for (std::size_t i = done; i < batch.size(); i++)
        pending_.push_back(std::move(batch[i]));
    update_accepting();
    return false;
}

void Parent::flush_pending()
{
    while (!pending_.empty()) {
        Pending batch[max_handover];
        const std::size_t n = std::min(pending_.size(), max_handover);
        for (std::size_t i = 0; i < n; i++) {
            batch[i] = std::move(pending_.front());
            pending_.pop_front();
        }
        const std::size_t before = pending_.size();
        if (!hand_over({ batch, n })) {
            // hand_over queued the rest at the back; keep the order of arrival.
            const auto left = static_cast<std::ptrdiff_t>(pending_.size() - before);
            std::rotate(pending_.begin(), pending_.end() - left, pending_.end());
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

void Parent::on_worker_writable(evutil_socket_t fd, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    for (auto& w : self->workers_)
        if (w->drain_owed && w->channel.get() == fd)
            self->send_drain(*w);
    self->flush_pending();
}

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
            logf(
                LogLevel::warning, "worker %d: malformed message ignored", static_cast<int>(w.pid));
            continue;
        }
        if (m.type == Msg::log && m.payload_len >= 1 && m.payload[0] >= 3 && m.payload[0] <= 7) {
            const std::string_view text(
                reinterpret_cast<const char*>(m.payload + 1), m.payload_len - 1);
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
            logf(LogLevel::warning, "worker %d: unexpected message ignored",
                static_cast<int>(w.pid));
        }
    }
}

} // namespace sniproxy
