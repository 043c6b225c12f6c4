// worker.cc: a jailed worker. It enters its sandbox before it holds any client data, then
// runs one libevent loop: connections arrive over the channel from the parent (and requests to
// shed some, verdicts on reported sources); log records and per-connection reports (hello
// done, closed, source) go back over it. A worker never holds a listening socket.
#include "worker.h"

#include "connection.h"
#include "event_ptr.h"
#include "ja4.h"
#include "log.h"
#include "metrics_store.h"
#include "protocol.h"
#include "sandbox.h"
#include "settings.h"

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

namespace sniproxy {

namespace {

    class Worker {
    public:
        Worker(const Options& o, Settings settings, EventBasePtr base, MetricsSlot& metrics)
            : options_(o)
            , channel_(o.worker.channel_fd)
            , base_(std::move(base))
            , metrics_(metrics)
        {
            settings_.hello_timeout_s = o.hello_timeout;
            settings_.all_hashed = o.all_hashed;
            settings_.idle_timeout_s = settings.idle_timeout;
            settings_.hello_done = on_hello_done;
            settings_.report_source = on_report_source;
            settings_.settings = std::move(settings);
            settings_.metrics = &metrics;
            settings_.refusals = &refusals_;
        }

        int run();

    private:
        static void on_channel(evutil_socket_t, short what, void* arg);
        static void on_flush(evutil_socket_t, short, void* arg);
        static void on_grace(evutil_socket_t, short, void* arg);
        static void on_move(evutil_socket_t, short, void* arg);
        static void on_connection_done(void* owner, Connection* c);
        static void on_hello_done(void* owner, Connection* c);
        static void on_report_source(void* owner, Connection* c, const sockaddr_storage& source);

        void read_channel();
        void send_log(LogLevel level, std::string_view text);
        void queue_message(const Encoded& m);
        template <class M> void queue_ids_as(std::vector<std::uint32_t>& list);
        void queue_ids();
        void schedule_flush();
        void flush_queue();
        void flush_at_exit();
        void start_connections(const ConnectionsMsg& m);
        void lost_connections(const Received& m);
        void start_drain(const DrainMsg& m);
        void exit_when_empty();
        static void on_settled(evutil_socket_t, short, void* arg);
        void shed(const ShedMsg& m);
        void verdict(const VerdictMsg& m);
        void move_established();
        void adopt(const MovingMsg& m);
        void violation(const std::string& why);

        const Options& options_;
        int channel_;
        EventBasePtr base_;
        EventPtr channel_event_;
        EventPtr flush_event_; // the channel is writable again
        EventPtr flush_timer_; // the batch has waited long enough
        EventPtr grace_event_;
        EventPtr move_timer_; // the next batch of established connections to hand over
        EventPtr settle_timer_; // exit_when_empty
        bool moved_any_ = false;
        ConnectionSettings settings_;
        MetricsSlot& metrics_;
        RefusalLog refusals_; // refusals decided by the parent's verdict on a PROXY source
        std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
        std::unordered_map<std::uint32_t, Connection*> by_id_;
        std::deque<Encoded> queue_; // records the channel could not take yet, in order
        // Reports not yet queued; hello done always leaves before closed, so the parent never
        // hears of a hello of a connection it has already released.
        std::vector<std::uint32_t> hello_done_, closed_;
        // Given back by the parent (no newer worker had room): they stay here.
        std::unordered_set<std::uint32_t> stay_;
        std::size_t dropped_logs_ = 0;
        bool draining_ = false;
        bool violated_ = false; // the parent broke the protocol: exit with status 1
    };

    constexpr std::size_t max_queued_logs = 4096;
    constexpr timeval flush_delay { 0, 10000 }; // 10 ms

    int Worker::run()
    {
        log_set_sink([this](LogLevel l, std::string_view t) { send_log(l, t); });
        channel_event_.reset(
            event_new(base_.get(), channel_, EV_READ | EV_PERSIST, on_channel, this));
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

    void Worker::read_channel()
    {
        for (;;) {
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
                    continue;
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
                    continue;
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
                continue;
            }
            if (const auto* v = std::get_if<VerdictMsg>(&msg)) {
                verdict(*v);
                continue;
            }
            if (const auto* mv = std::get_if<MovingMsg>(&msg)) {
                adopt(*mv); // also after drain: one given back
                continue;
            }
            if (draining_) // after drain the parent sends no connection and no drain
                return violation("a message after drain");
            if (const auto* c = std::get_if<ConnectionsMsg>(&msg))
                start_connections(*c);
            else
                start_drain(std::get<DrainMsg>(msg));
        }
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

    void Worker::on_move(evutil_socket_t, short, void* arg)
    {
        static_cast<Worker*>(arg)->move_established();
    }

    // Draining: established connections go to the parent, a batch per loop turn, behind the
    // reports already queued (the parent must have heard each one's hello done). One whose
    // state does not fit a message yet, or that the channel has no room for, is tried again
    // on the next turn; hello-phase ones finish here (or move once routed).
    void Worker::move_established()
    {
        constexpr std::size_t batch = 64;
        flush_queue();
        std::vector<Connection*> ready;
        bool waiting = false;
        for (const auto& [raw, c] : connections_) {
            if (c->established() && !stay_.contains(c->id()))
                ready.push_back(raw);
            else if (c->in_hello())
                waiting = true; // may be moved once routed
        }
        std::size_t moved = 0;
        bool full = !queue_.empty();
        for (Connection* c : ready) {
            if (full || moved == batch) {
                waiting = true;
                break;
            }
            Encoded e;
            RelayState state;
            if (!c->export_moving(&e, &state)) {
                waiting = true; // too much pending right now
                continue;
            }
            int fds[3] = { state.client.get(), state.backend.get(), state.pipe.get() };
            const int err = send_moving(channel_, e, { fds, state.pipe ? 3u : 2u });
            if (err != 0) {
                c->resume(std::move(state));
                full = waiting = true;
                continue;
            }
            moved++;
            by_id_.erase(c->id());
            connections_.erase(c); // its descriptors close here: the new worker holds them
            metrics_.active(-1);
        }
        if (moved > 0) {
            moved_any_ = true;
            logf(LogLevel::debug, "worker: %zu established connection(s) handed over", moved);
        }
        if (connections_.empty())
            return exit_when_empty();
        if (waiting) {
            const timeval later { 0, full || moved == 0 ? 10000 : 0 };
            evtimer_add(move_timer_.get(), &later);
        }
    }

    void Worker::adopt(const MovingMsg& m)
    {
        if (by_id_.contains(m.id))
            return violation("a moved connection this worker already holds");
        auto c = Connection::adopt(base_.get(), settings_, m, on_connection_done, this);
        Connection* raw = c.get();
        connections_.emplace(raw, std::move(c));
        by_id_[raw->id()] = raw;
        metrics_.active(+1);
        if (draining_)
            stay_.insert(m.id);
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

    // Records are queued and leave in batches (schedule_flush, flush_queue).
    void Worker::send_log(LogLevel level, std::string_view text)
    {
        if (queue_.size() >= max_queued_logs) {
            dropped_logs_++;
            return;
        }
        queue_message(encode(LogMsg { level, text }));
        schedule_flush();
    }

    void Worker::queue_message(const Encoded& m)
    {
        queue_.push_back(m);
    }

    // The reports, as messages of up to max_ids ids each, behind what is queued already.
    template <class M> void Worker::queue_ids_as(std::vector<std::uint32_t>& list)
    {
        for (std::span<const std::uint32_t> left(list); !left.empty();) {
            M m;
            left = left.subspan(take_ids(left, &m));
            queue_message(encode(m));
        }
        list.clear();
    }

    void Worker::queue_ids()
    {
        queue_ids_as<HelloDoneMsg>(hello_done_);
        queue_ids_as<ClosedMsg>(closed_);
    }

    // Log records and close counts wait up to flush_delay so that they leave in batches even
    // when connections come one at a time: the parent then wakes a hundred times a second at
    // most, not once per connection. A full batch leaves at once.
    void Worker::schedule_flush()
    {
        if (event_pending(flush_event_.get(), EV_WRITE, nullptr))
            return; // waiting for room in the channel already
        if (queue_.size() + 1 >= max_batch) {
            evtimer_del(flush_timer_.get());
            event_add(flush_event_.get(), nullptr);
        } else if (!evtimer_pending(flush_timer_.get(), nullptr)) {
            evtimer_add(flush_timer_.get(), &flush_delay);
        }
    }

    void Worker::on_flush(evutil_socket_t, short, void* arg)
    {
        static_cast<Worker*>(arg)->flush_queue();
    }

    // Sends the queued records and reports in batches of one sendmmsg each, until done or
    // the channel is full (then the next writable event resumes).
    void Worker::flush_queue()
    {
        // The count of refusal lines left out, once their second is over.
        if (const std::uint64_t n = refusals_.expire(RefusalLog::Clock::now()))
            log_line(LogLevel::notice, suppressed_message(n));
        queue_ids();
        while (!queue_.empty()) {
            Outgoing batch[max_batch];
            std::size_t n = 0;
            for (; n < queue_.size() && n < max_batch; n++)
                batch[n] = { queue_[n].type, queue_[n].bytes() };
            const int sent = send_messages(channel_, { batch, n });
            if (sent <= 0)
                break; // full (or the parent is gone: the channel's read side will tell)
            queue_.erase(queue_.begin(), queue_.begin() + sent);
            if (static_cast<std::size_t>(sent) < n)
                break;
        }
        if (queue_.empty() && dropped_logs_ > 0) {
            const std::size_t n = std::exchange(dropped_logs_, 0);
            logf(LogLevel::warning, "worker: %zu log records dropped (parent not reading)", n);
        }
        if (!queue_.empty())
            event_add(flush_event_.get(), nullptr);
    }

    // The last records before exit: wait (briefly) for room in the channel rather than lose them.
    void Worker::flush_at_exit()
    {
        for (int i = 0; i < 100 && (!queue_.empty() || !closed_.empty()); i++) {
            flush_queue();
            pollfd p { channel_, POLLOUT, 0 };
            if (!queue_.empty() && poll(&p, 1, 10) < 0)
                break;
        }
    }

    // Every privilege step is checked; a failure ends this worker with a clear message.
    bool enter_sandbox(const Options& o)
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
    if (!enter_sandbox(o))
        return 1;
    Worker worker(o, std::move(settings), std::move(base), metrics);
    return worker.run();
}

} // namespace sniproxy
