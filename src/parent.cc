// parent.cc: the parent's libevent glue. Callbacks only translate events into calls on the
// Dispatcher and the Supervisor, then sync() mirrors their state into events and timers.
// Starting workers is parent_spawn.cc; a worker's channel is parent_channel.h.
#include "parent.h"

#include "parent_channel.h"
#include "parent_upgrade.h"

#include "listeners.h"
#include "log.h"
#include "metrics_process.h"
#include "moving_forward.h"
#include "protocol.h"
#include "settings_file.h"
#include "spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace sniproxy {

namespace {
    // How many to accept from `listener` on this readiness (accept_pacer.h).
    std::size_t accept_budget(AcceptPacer& pacer, int listener)
    {
        using Probe = AcceptPacer::Probe;
        if (!pacer.wants_probe(monotonic_ns()))
            return pacer.budget(Probe::skipped, 0);
        std::size_t queued = 0;
        std::string err; // not TCP (a socket passed to us): until EAGAIN, as ever
        return accept_queue_length(listener, &queued, &err)
            ? pacer.budget(Probe::answered, queued)
            : pacer.budget(Probe::failed, 0);
    }

    // Arms `ev` for `at_ns` (0: disarmed), touching libevent only when the time changed.
    void arm(event* ev, std::int64_t at_ns, std::int64_t& armed)
    {
        if (at_ns == armed)
            return;
        armed = at_ns;
        evtimer_del(ev);
        if (at_ns == 0)
            return;
        const std::int64_t ms = std::max<std::int64_t>(0, at_ns - monotonic_ns()) / 1'000'000 + 1;
        const timeval in { static_cast<time_t>(ms / 1000),
            static_cast<suseconds_t>(ms % 1000 * 1000) };
        evtimer_add(ev, &in);
    }
} // namespace

Parent::Parent(const Options& options, Settings settings, Invocation invocation,
    std::vector<UniqueFd> listeners, Identity identity, std::size_t max_per_worker,
    MetricsProcess* metrics)
    : options_(options)
    , settings_(std::move(settings))
    , gate_(settings_, random_hash_key())
    , invocation_(std::move(invocation))
    , identity_(identity)
    , max_per_worker_(max_per_worker)
    , worker_count_(options.workers > 0
              ? options.workers
              : static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))))
    , metrics_(metrics)
    , listeners_(std::move(listeners))
    , dispatcher_(workers_, max_per_worker, clock_)
    , supervisor_(workers_, dispatcher_, *this, clock_,
          { worker_count_, options.grace, invocation_.upgrade_from,
              settings_.move_connections })
{
    event_config* cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    // Coalesces the epoll_ctl calls of one loop iteration: a descriptor handed from one
    // event to another (hello -> relay) costs no system call. We never dup() descriptors
    // that are registered, the one case the changelist gets wrong.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base_.reset(event_base_new_with_config(cfg));
    event_config_free(cfg);
    dispatcher_.set_limits(&gate_.limits());
    dispatcher_.set_capacity(max_per_worker_ * static_cast<std::size_t>(worker_count_));
    // Moves waiting for room hold descriptors: half of ours at most, the rest for accepting.
    if (rlimit nofile; getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
        supervisor_.set_queued_fd_budget(static_cast<std::size_t>(nofile.rlim_cur / 2));
}

Parent::~Parent() = default;

int Parent::run()
{
    if (!base_) {
        logf(LogLevel::err, "cannot create the event loop");
        return 1;
    }
    pacers_.resize(listeners_.size());
    for (UniqueFd& l : listeners_)
        listen_events_.emplace_back(
            event_new(base_.get(), l.get(), EV_READ | EV_PERSIST, on_accept, this));
    for (int sig : { SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGUSR2 }) {
        signal_events_.emplace_back(evsignal_new(base_.get(), sig, on_signal, this));
        evsignal_add(signal_events_.back().get(), nullptr);
    }
    resume_event_.reset(evtimer_new(base_.get(), on_resume, this));
    respawn_event_.reset(evtimer_new(base_.get(), on_tick, this));
    kill_event_.reset(evtimer_new(base_.get(), on_tick, this));
    second_event_.reset(event_new(base_.get(), -1, EV_PERSIST, on_second, this));
    const timeval second { 1, 0 };
    evtimer_add(second_event_.get(), &second);
    if (metrics_)
        metrics_->start(base_.get(), options_, identity_);
    if (invocation_.upgrade_channel)
        open_upgrade_channel(std::move(invocation_.upgrade_channel), false);
    std::string err;
    if (!supervisor_.start(&err))
        return 1; // the reason is logged
    logf(LogLevel::notice, "started: %zu listener(s), %d worker(s), up to %zu connections each",
        listeners_.size(), worker_count_, max_per_worker_);
    sync();
    event_base_dispatch(base_.get());
    // Tearing down the signal events restores the default actions; a late second SIGTERM
    // must not turn a clean exit into death by signal.
    for (int sig : { SIGHUP, SIGTERM, SIGINT, SIGUSR2 })
        signal(sig, SIG_IGN);
    if (const std::size_t n = dispatcher_.pending())
        logf(LogLevel::err, "stopped with %zu accepted connection(s) no worker could take: closed",
            n);
    if (metrics_)
        metrics_->stop();
    logf(LogLevel::notice, "stopped");
    return 0;
}

void Parent::sync()
{
    if (dispatcher_.stopped() && !listeners_.empty()) {
        listen_events_.clear();
        listeners_.clear(); // new clients are refused from now on
        accepting_ = false;
    }
    const bool on = dispatcher_.wants_accepting() && !listeners_.empty();
    if (on != accepting_) {
        accepting_ = on;
        for (auto& e : listen_events_)
            on ? event_add(e.get(), nullptr) : event_del(e.get());
    }
    arm(resume_event_.get(), dispatcher_.paused_until_ns(), resume_armed_);
    arm(respawn_event_.get(), supervisor_.next_respawn_ns(), respawn_armed_);
    arm(kill_event_.get(), supervisor_.next_backstop_ns(), kill_armed_);
    sync_metrics();
    if (supervisor_.finished())
        event_base_loopbreak(base_.get());
}

void Parent::sync_metrics()
{
    if (!metrics_)
        return;
    for (const auto& w : workers_) {
        const WorkerState state = w->draining ? WorkerState::draining
            : w->ready                        ? WorkerState::ready
                                              : WorkerState::starting;
        if (state != w->metrics_state) {
            w->metrics_state = state;
            metrics_->store().set_state(w->metrics_slot, state);
        }
        if (w->moved_in != w->metrics_moved_in) {
            metrics_->store().count_moved(w->generation, w->moved_in - w->metrics_moved_in);
            w->metrics_moved_in = w->moved_in;
        }
    }
}

void Parent::count_rejected(RejectReason reason)
{
    if (metrics_)
        metrics_->store().count_rejected(reason);
}

void Parent::on_accept(evutil_socket_t fd, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    self->accept_batch(fd);
    self->sync();
}

// Accepts as many as the pacer says (accept_pacer.h) and hands them over in messages of
// up to max_handover connections, so a busy parent and worker wake once per batch.
void Parent::accept_batch(int listener)
{
    LogBatch lines; // refusals of this wake-up leave in one write
    std::size_t budget = AcceptPacer::max_batch;
    AcceptPacer* pacer = nullptr;
    for (std::size_t i = 0; i < listeners_.size(); i++)
        if (listeners_[i].get() == listener) {
            pacer = &pacers_[i];
            budget = accept_budget(*pacer, listener);
        }
    Pending batch[max_handover];
    std::size_t n = 0;
    std::size_t tried = 0;
    bool emptied = false;
    for (; tried < budget && dispatcher_.wants_accepting(); tried++) {
        ConnectionInfo info;
        socklen_t len = sizeof info.peer;
        UniqueFd fd(accept4(
            listener, reinterpret_cast<sockaddr*>(&info.peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            const int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                emptied = true;
                break;
            }
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                // Out of descriptors: pause (never spin), say so once, retry in a second.
                if (!fd_exhausted_logged_)
                    logf_errno(
                        LogLevel::err, "accept (pausing accepts; raise the descriptor limit?)");
                fd_exhausted_logged_ = true;
                dispatcher_.pause();
                break;
            }
            if (err != ECONNABORTED && err != EINTR && err != EPROTO && err != EPERM)
                logf_errno(LogLevel::warning, "accept");
            continue;
        }
        fd_exhausted_logged_ = false;
        info.accepted_ns = monotonic_ns();
        info.from_balancer = gate_.is_balancer(info.peer);
        SourceKey key;
        if (Verdict refused; !gate_.admit(info.peer, info.accepted_ns, &key, &refused)) {
            // The verdict's name is the log's result word, which names the reason too.
            count_rejected(
                reject_reason_from_name(verdict_name(refused)).value_or(RejectReason::other));
            continue; // refused and logged; closing it is all the client hears
        }
        batch[n++] = { std::move(fd), info, key };
        if (n == max_handover) {
            const bool all = dispatcher_.hand_over({ batch, n });
            n = 0;
            if (!all) {
                tried++;
                break; // no worker has room: the rest waits in the backlog
            }
        }
    }
    if (pacer)
        pacer->finished(tried, emptied);
    if (n > 0)
        dispatcher_.hand_over({ batch, n });
    dispatcher_.shed_if_needed();
}

void Parent::on_second(evutil_socket_t, short, void* arg)
{
    static_cast<Parent*>(arg)->gate_.tick(monotonic_ns());
}

// A bad file keeps the settings we have (and says why, with its line); a good one applies to
// new connections now and to the workers of the generation this SIGHUP starts.
void Parent::reload_settings()
{
    if (options_.settings_file.empty())
        return;
    Settings fresh;
    if (std::string err; !load_settings(options_, &fresh, &err)) {
        logf(LogLevel::err, "SIGHUP: %s; keeping the settings in use", err.c_str());
        return;
    }
    settings_ = std::move(fresh);
    gate_.configure(settings_);
    supervisor_.set_move_connections(settings_.move_connections);
    logf(LogLevel::notice, "SIGHUP: settings re-read from %s", options_.settings_file.c_str());
}

void Parent::on_resume(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    self->resume_armed_ = 0;
    self->dispatcher_.resume();
    self->sync();
}

void Parent::on_tick(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    self->respawn_armed_ = self->kill_armed_ = 0; // re-armed by sync if still due later
    evtimer_del(self->respawn_event_.get());
    evtimer_del(self->kill_event_.get());
    self->supervisor_.tick();
    self->sync();
}

void Parent::read_worker(WorkerSlot& w)
{
    auto& channel = static_cast<Channel&>(*w.channel);
    // One batch for every channel: the parent reads one channel at a time.
    static ReceiveBatch batch;
    LogBatch lines; // the records of this wake-up leave in as few writes as they fit
    // A bounded number per wake-up: a worker that writes without pause must not keep the
    // parent from accepting or from reading the others (the event fires again).
    for (int read = 0; read < max_messages_per_read;) {
        receive_messages(channel.fd(), batch);
        read += static_cast<int>(batch.count);
        bool stop = false;
        for (std::size_t i = 0; i < batch.count && !stop; i++) {
            // A worker's records are bounded by its encoder: one that does not fit is a lie,
            // unless its descriptors were cut (we are out of them: the connection is lost).
            Received& m = batch.messages[i];
            if (batch.results[i] != Recv::invalid)
                stop = !supervisor_.on_message(w, m);
            else if (const auto id = cut_moving_id(m))
                stop = !supervisor_.on_moving_cut(w, *id);
            else {
                supervisor_.violation(w, "a message that does not fit");
                stop = true;
            }
        }
        batch.release(); // what a message carried and nobody took is closed now
        if (stop || batch.end == Recv::eof || batch.end == Recv::error) {
            channel.stop_reading(); // violated, or exiting: SIGCHLD does the rest
            return;
        }
        if (batch.end == Recv::again)
            return;
    }
}

void Parent::on_signal(evutil_socket_t sig, short, void* arg)
{
    auto* self = static_cast<Parent*>(arg);
    switch (sig) {
    case SIGCHLD:
        self->reap_children();
        break;
    case SIGHUP:
        self->reload_settings();
        self->supervisor_.rollover();
        break;
    case SIGUSR2:
        self->supervisor_.upgrade();
        break;
    default:
        // The listeners close before the supervisor says "stopping", so that whoever reads
        // that line can count on new clients being refused already.
        self->dispatcher_.stop();
        self->sync();
        self->supervisor_.stop(self->supervisor_.stopping());
        break; // a second SIGTERM/SIGINT: at once
    }
    self->sync();
}

void Parent::reap_children()
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (metrics_ && metrics_->child_exited(pid, status))
            continue;
        int slot = -1;
        if (WorkerSlot* w = supervisor_.find(pid)) {
            w->reaped = true; // never signalled again, whatever its last messages say
            read_worker(*w); // its last log records may still sit in the channel
            slot = w->metrics_slot;
        }
        supervisor_.child_exited(pid, status);
        if (metrics_) // what it counted joins the retired totals: nothing is lost
            metrics_->store().release_slot(slot);
    }
}

} // namespace sniproxy
