// metrics_process.cc: starting, supervising and stopping the metrics server, the process
// that answers scrapers so that the privileged parent never parses an HTTP request.
#include "metrics_process.h"

#include "log.h"
#include "protocol.h"
#include "spawn.h"
#include "supervisor.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <variant>

namespace sniproxy {

namespace {
    constexpr std::int64_t crash_window_ns = 2'000'000'000; // as for workers
    constexpr std::int64_t max_restart_delay_ms = 30'000;
    constexpr timeval publish_every { 1, 0 };

    timeval after_ms(std::int64_t ms)
    {
        return { static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000) };
    }
} // namespace

MetricsProcess::~MetricsProcess()
{
    stop();
}

bool MetricsProcess::open(const MetricsAddress& address, std::string_view version, std::string* err)
{
    return store_.create(version, err) && bind_metrics_listener(address, &listener_, err);
}

void MetricsProcess::start(event_base* base, const Options& options, const Identity& identity)
{
    base_ = base;
    options_ = &options;
    identity_ = identity;
    restart_event_.reset(evtimer_new(base, on_restart, this));
    publish_event_.reset(event_new(base, -1, EV_PERSIST, on_publish, this));
    event_add(publish_event_.get(), &publish_every);
    on_publish(-1, 0, this);
    spawn();
}

void MetricsProcess::spawn()
{
    if (stopped_)
        return;
    // Should this start fail, the next try backs off as after a young death.
    const std::int64_t backoff
        = std::clamp<std::int64_t>(restart_delay_ms_ * 2, 100, max_restart_delay_ms);
    int sv[2];
    UniqueFd readonly;
    std::string err;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        logf_errno(LogLevel::err, "metrics server: socketpair");
        restart_delay_ms_ = backoff;
        return schedule_restart();
    }
    UniqueFd mine(sv[0]), theirs(sv[1]);
    if (!store_.readonly_fd(&readonly, &err)) {
        logf(LogLevel::err, "%s", err.c_str());
        restart_delay_ms_ = backoff;
        return schedule_restart();
    }
    // fds 3, 4, 5 in the server: its channel, the listener, the region (read-only).
    Options::Worker spec;
    static_cast<Identity&>(spec) = identity_;
    spec.channel_fd = 3;
    spec.metrics_listen_fd = 4;
    spec.metrics_fd = 5;
    pid_t pid;
    if (!sniproxy::spawn({ "/proc/self/exe", metrics_server_arguments(*options_, spec),
                             { theirs.get(), listener_.fd.get(), readonly.get() }, false, {} },
            &pid, &err)) {
        logf(LogLevel::err, "metrics server: %s", err.c_str());
        restart_delay_ms_ = backoff;
        return schedule_restart();
    }
    pid_ = pid;
    started_ns_ = monotonic_ns();
    channel_ = std::move(mine);
    channel_event_.reset(event_new(base_, channel_.get(), EV_READ | EV_PERSIST, on_channel, this));
    event_add(channel_event_.get(), nullptr);
    logf(LogLevel::debug, "metrics server %d started", static_cast<int>(pid));
}

void MetricsProcess::on_channel(evutil_socket_t, short, void* arg)
{
    static_cast<MetricsProcess*>(arg)->read_channel();
}

// The server only logs; anything else from it is a protocol violation, as from a worker.
void MetricsProcess::read_channel()
{
    for (;;) {
        Received m;
        const Recv r = receive_message(channel_.get(), m);
        if (r == Recv::again)
            return;
        FromWorker msg;
        std::string err;
        const LogMsg* log = nullptr;
        if (r == Recv::message && decode_from_worker(m, &msg, &err))
            log = std::get_if<LogMsg>(&msg);
        if (log) {
            log_line(log->level, sanitize_log_text(log->text, 900, false));
            continue;
        }
        if (r == Recv::message || r == Recv::invalid) {
            logf(LogLevel::err, "metrics server %d: protocol violation: %s; replacing it",
                static_cast<int>(pid_), err.empty() ? "not a log record" : err.c_str());
            ::kill(pid_, SIGKILL);
        }
        channel_event_.reset(); // it is exiting; SIGCHLD does the rest
        return;
    }
}

bool MetricsProcess::child_exited(pid_t pid, int status)
{
    if (pid <= 0 || pid != pid_)
        return false;
    pid_ = -1;
    if (channel_event_) // its last log records
        read_channel();
    channel_event_.reset();
    channel_.reset();
    if (stopped_)
        return true;
    const bool young = monotonic_ns() - started_ns_ < crash_window_ns;
    restart_delay_ms_
        = young ? std::clamp<std::int64_t>(restart_delay_ms_ * 2, 100, max_restart_delay_ms) : 0;
    // SIGTERM is someone's decision (a service manager stopping the whole group), not a crash.
    const bool asked = WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
    logf(asked ? LogLevel::notice : LogLevel::err,
        "metrics server %d %s; starting another in %lld ms", static_cast<int>(pid),
        describe_status(status).c_str(), static_cast<long long>(restart_delay_ms_));
    schedule_restart();
    return true;
}

void MetricsProcess::schedule_restart()
{
    if (stopped_ || !restart_event_)
        return;
    const timeval in = after_ms(restart_delay_ms_);
    evtimer_add(restart_event_.get(), &in);
}

void MetricsProcess::on_restart(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<MetricsProcess*>(arg);
    if (self->pid_ < 0)
        self->spawn();
}

void MetricsProcess::on_publish(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<MetricsProcess*>(arg);
    self->store_.set_parent_open_fds(count_open_fds());
}

void MetricsProcess::stop()
{
    if (stopped_)
        return;
    stopped_ = true;
    restart_event_.reset();
    publish_event_.reset();
    channel_event_.reset();
    channel_.reset(); // the server reads EOF and returns
    if (pid_ > 0) {
        int status;
        bool gone = false;
        for (int i = 0; i < 100 && !gone; i++) { // up to a second
            gone = waitpid(pid_, &status, WNOHANG) == pid_;
            if (!gone) {
                const timespec ten_ms { 0, 10'000'000 };
                nanosleep(&ten_ms, nullptr);
            }
        }
        if (!gone) {
            ::kill(pid_, SIGKILL);
            waitpid(pid_, &status, 0);
        }
        pid_ = -1;
    }
    remove_socket_file(listener_);
}

} // namespace sniproxy
