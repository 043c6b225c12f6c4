// worker.cc: a jailed worker. It enters its sandbox before it holds any client data, then
// runs one libevent loop: connections arrive over the channel from the parent (and requests to
// shed some, verdicts on reported sources); log records and per-connection reports (hello
// done, closed, source) go back over it (worker_outbox.cc); on a rollover its established
// connections move on (worker_move.cc). A worker never holds a listening socket.
#include "worker.h"

#include "hosts_cache.h"
#include "ja4.h"
#include "sandbox.h"
#include "worker_loop.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace sniproxy::worker_loop {

int Worker::run()
{
    log_set_sink([this](LogLevel l, std::string_view t) { send_log(l, t); });
    channel_event_.reset(event_new(base_.get(), channel_, EV_READ | EV_PERSIST, on_channel, this));
    flush_event_.reset(event_new(base_.get(), channel_, EV_WRITE, on_flush, this));
    flush_timer_.reset(evtimer_new(base_.get(), on_flush, this));
    grace_event_.reset(evtimer_new(base_.get(), on_grace, this));
    move_timer_.reset(evtimer_new(base_.get(), on_move, this));
    settle_timer_.reset(evtimer_new(base_.get(), on_settled, this));
    event_add(channel_event_.get(), nullptr);
    if (send(channel_, encode(ReadyMsg {})) != 0)
        return 1;
    // Logged after the ready message, so that whoever reads "ready" in the log can rely
    // on the parent already counting this worker as ready.
    logf(LogLevel::debug, "worker: generation %u ready (%s)", options_.worker.generation,
        options_.worker.jail ? "chroot, unprivileged user, seccomp"
                             : "no chroot (not root), seccomp");
    event_base_dispatch(base_.get());
    connections_.clear();
    flush_at_exit();
    log_set_sink(nullptr);
    return violated_ ? 1 : 0;
}

void Worker::on_channel(evutil_socket_t, short, void* arg)
{
    static_cast<Worker*>(arg)->read_channel();
}

// One message per wake-up: the channel's event is level-triggered, so the next one wakes
// us again at once, and we never pay the recvmsg that only says EAGAIN (half a system call
// per connection, as most records come alone).
void Worker::read_channel()
{
    Received m;
    switch (receive_message(channel_, m)) {
    case Recv::again:
        return;
    case Recv::eof: // the parent is gone: so are we (no orphans)
    case Recv::error:
        event_base_loopbreak(base_.get());
        return;
    case Recv::invalid:
        // Descriptors cut because we are out of them is our limit, not the parent's
        // fault: those connections are reported ended and we carry on.
        if (m.type == Msg::connection && m.fds_truncated) {
            lost_connections(m);
            return;
        }
        if (m.type == Msg::moving && m.fds_truncated && m.payload_len >= 4) {
            std::uint32_t id;
            std::memcpy(&id, m.payload, sizeof id);
            logf(LogLevel::err,
                "worker: a moved connection's descriptors lost (out of them?), "
                "connection %u closed",
                id);
            closed_.push_back(id);
            schedule_flush();
            return;
        }
        return violation("a message that does not fit");
    case Recv::message:
        break;
    }
    FromParent msg;
    std::string err;
    if (!decode_from_parent(m, &msg, &err))
        return violation(err);
    if (const auto* s = std::get_if<ShedMsg>(&msg)) {
        shed(*s);
        return;
    }
    if (const auto* v = std::get_if<VerdictMsg>(&msg)) {
        verdict(*v);
        return;
    }
    if (const auto* mv = std::get_if<MovingMsg>(&msg)) {
        adopt(*mv); // also after drain: one given back
        return;
    }
    if (draining_) // after drain the parent sends no connection and no drain
        return violation("a message after drain");
    if (const auto* c = std::get_if<ConnectionsMsg>(&msg))
        start_connections(*c);
    else
        start_drain(std::get<DrainMsg>(msg));
}

// Like OpenSSH's monitor, the other side of a broken protocol is not argued with.
void Worker::violation(const std::string& why)
{
    logf(LogLevel::err, "worker: protocol violation by the parent: %s; exiting", why.c_str());
    violated_ = true;
    event_base_loopbreak(base_.get());
}

// A connection message whose descriptors were cut (we ran out): whatever descriptors came
// close with `m`, and the parent, which counted every connection it announced, hears that
// they ended.
void Worker::lost_connections(const Received& m)
{
    IdList ids;
    const std::size_t n = connections_in(m, &ids);
    logf(LogLevel::err,
        "worker: descriptors of a connection message lost (out of them?), "
        "%zu connection(s) closed",
        n);
    closed_.insert(closed_.end(), ids.ids, ids.ids + ids.count);
    schedule_flush();
}

// Shedding races with the hello: a connection routed (or gone) meanwhile is left alone.
void Worker::shed(const ShedMsg& m)
{
    for (const std::uint32_t id : m.span()) {
        const auto it = by_id_.find(id);
        if (it != by_id_.end() && it->second->in_hello())
            it->second->abort("shed");
    }
}

void Worker::verdict(const VerdictMsg& m)
{
    if (const auto it = by_id_.find(m.id); it != by_id_.end())
        it->second->on_verdict(m.verdict);
}

void Worker::start_connections(const ConnectionsMsg& m)
{
    for (std::size_t i = 0; i < m.count; i++) {
        auto c = std::make_unique<Connection>(
            base_.get(), settings_, std::move(m.fds[i]), m.infos[i], on_connection_done, this);
        Connection* raw = c.get();
        connections_.emplace(raw, std::move(c));
        by_id_[raw->id()] = raw;
        metrics_.active(+1);
        raw->start();
    }
}

void Worker::start_drain(const DrainMsg& m)
{
    draining_ = true;
    if (connections_.empty()) {
        event_base_loopbreak(base_.get());
        return;
    }
    const timeval grace { static_cast<time_t>(m.grace_s), 0 };
    evtimer_add(grace_event_.get(), &grace);
    if (m.move)
        move_established();
}

// Draining and nothing left. After a hand-over the parent may still give one back (no
// newer worker had room): it has the time of this settling delay to arrive.
void Worker::exit_when_empty()
{
    if (!draining_ || !connections_.empty())
        return;
    if (!moved_any_) {
        event_base_loopexit(base_.get(), nullptr);
        return;
    }
    constexpr timeval settle { 0, 200000 };
    evtimer_add(settle_timer_.get(), &settle);
}

void Worker::on_settled(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Worker*>(arg);
    if (self->connections_.empty())
        event_base_loopexit(self->base_.get(), nullptr);
}

// The grace is over: close what is still open, each with its log line.
void Worker::on_grace(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Worker*>(arg);
    logf(LogLevel::notice, "worker: grace expired, closing %zu connection(s)",
        self->connections_.size());
    while (!self->connections_.empty())
        self->connections_.begin()->first->abort("grace-expired");
}

void Worker::on_connection_done(void* owner, Connection* c)
{
    auto* self = static_cast<Worker*>(owner);
    self->closed_.push_back(c->id());
    self->by_id_.erase(c->id());
    self->stay_.erase(c->id());
    self->connections_.erase(c);
    self->metrics_.active(-1);
    self->schedule_flush(); // the report leaves in the next batch
    self->exit_when_empty();
}

void Worker::on_hello_done(void* owner, Connection* c)
{
    auto* self = static_cast<Worker*>(owner);
    self->hello_done_.push_back(c->id());
    self->schedule_flush();
}

void Worker::on_report_source(void* owner, Connection* c, const sockaddr_storage& source)
{
    auto* self = static_cast<Worker*>(owner);
    self->queue_message(encode(SourceMsg { c->id(), source }));
    self->schedule_flush();
}

} // namespace sniproxy::worker_loop

namespace sniproxy {

namespace {
    // Every privilege step is checked; a failure ends this worker with a clear message.
    bool enter_sandbox(const Options& o, HostsCache* hosts)
    {
        std::string error;
        const int dir = o.worker.hosts_fd;
        if (o.worker.jail) {
            if (!jail_worker(o.hosts_dir, o.worker, error, dir))
                return logf(LogLevel::err, "worker: %s", error.c_str()), false;
            prctl(PR_SET_PDEATHSIG, SIGKILL); // set after setuid, which clears it
        } else if (dir >= 0 ? fchdir(dir) != 0 : chdir(o.hosts_dir.c_str()) != 0) {
            logf_errno(LogLevel::err, "worker: hosts directory %s", o.hosts_dir.c_str());
            return false;
        }
        if (dir >= 0)
            close(dir); // the jail is entered; nothing more to reach through it
        // The watch on the hosts directory (the jail's root) is set before the filters.
        if (std::string err; !hosts->open(&err))
            logf(LogLevel::notice, "worker: %s; hosts looked up without a cache", err.c_str());
        if (!set_no_new_privs(error) || !restrict_worker(&error) || !load_worker_seccomp(error))
            return logf(LogLevel::err, "worker: %s", error.c_str()), false;
        return true;
    }

} // namespace

int worker_main(const Options& o)
{
    signal(SIGPIPE, SIG_IGN);
    // Only the parent decides when a worker drains (its drain message): `pkill sniproxyd` or a
    // stray SIGTERM must not cut a worker's connections. The parent drains them all instead.
    for (int sig : { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 })
        signal(sig, SIG_IGN);
    prctl(PR_SET_NAME, "sniproxyd-wrk"); // exec via /proc/self/exe would show as "exe"
    log_set_verbosity(o.verbosity);
    const int channel = o.worker.channel_fd;
    // Until the loop runs, records go straight to the channel (blocking is fine here).
    log_set_sink([channel](LogLevel l, std::string_view t) {
        send(channel, encode(LogMsg { l, t }));
    });
    // Everything that needs the outside world is opened before the jail.
    event_config* cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    // Coalesces the epoll_ctl calls of one loop iteration: a descriptor handed from one
    // event to another (hello -> relay) costs no system call. We never dup() descriptors
    // that are registered, the one case the changelist gets wrong.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    EventBasePtr base(event_base_new_with_config(cfg));
    event_config_free(cfg);
    if (!base) {
        logf(LogLevel::err, "worker: cannot create the event loop");
        return 1;
    }
    // The parent passes its settings as -o items (settings_items), checked there already.
    Settings settings;
    if (std::string err; !parse_settings("", "", o.settings, &settings, &err)) {
        logf(LogLevel::err, "worker: %s", err.c_str());
        return 1;
    }
    if (std::string err; !prepare_ja4(&err)) // libcrypto's set-up cannot run under seccomp
        logf(LogLevel::warning, "worker: %s; no ja4= in the log", err.c_str());
    // Our slot of the metrics region is mapped now; the descriptor, which could map the
    // rest, is closed before the jail.
    MetricsSlot metrics;
    if (o.worker.metrics_slot >= 0) {
        std::string err;
        if (!metrics.attach(o.worker.metrics_fd, o.worker.metrics_slot, &err))
            logf(LogLevel::err, "worker: %s; its connections are not counted", err.c_str());
        close(o.worker.metrics_fd);
    }
    HostsCache hosts;
    if (!enter_sandbox(o, &hosts))
        return 1;
    worker_loop::Worker worker(o, std::move(settings), std::move(base), metrics, &hosts);
    return worker.run();
}

} // namespace sniproxy
