// metrics_process.h: the parent's side of -o metrics. It owns the shared metrics region and
// the metrics listener, both made before anything is forked, starts the jailed metrics server
// (this binary with -S) with the listener and a read-only descriptor of the region, restarts
// it when it dies (backing off while it dies young, like a worker), relays its log records,
// publishes the parent's own descriptor count every second, and stops the server at exit.
#pragma once

#include "event_ptr.h"
#include "fd.h"
#include "identity.h"
#include "metrics_listener.h"
#include "metrics_store.h"
#include "options.h"
#include "settings.h"

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace sniproxy {

class MetricsProcess {
public:
    MetricsProcess() = default;
    ~MetricsProcess();
    MetricsProcess(const MetricsProcess&) = delete;
    MetricsProcess& operator=(const MetricsProcess&) = delete;

    // The region and the listener; before daemon(), fork and the capability drop.
    bool open(const MetricsAddress& address, std::string_view version, std::string* err);
    MetricsStore& store() { return store_; }

    // Starts the server on `base` (the parent's loop). Failing to start is logged and retried
    // like a death; scraping is not worth refusing to route for.
    void start(event_base* base, const Options& options, const Identity& identity);
    // A reaped child: true when it was the metrics server (then it is restarted later).
    bool child_exited(pid_t pid, int status);
    // At the parent's exit: closes the server's channel (it exits on EOF), waits for it a
    // moment, kills it if it lingers, removes a unix socket file we created.
    void stop();

private:
    static void on_channel(evutil_socket_t, short, void* arg);
    static void on_restart(evutil_socket_t, short, void* arg);
    static void on_publish(evutil_socket_t, short, void* arg);

    void spawn();
    void read_channel();
    void schedule_restart();

    MetricsStore store_;
    MetricsListener listener_;
    event_base* base_ = nullptr;
    const Options* options_ = nullptr;
    Identity identity_;
    UniqueFd channel_;
    EventPtr channel_event_;
    EventPtr restart_event_;
    EventPtr publish_event_;
    pid_t pid_ = -1;
    std::int64_t started_ns_ = 0;
    std::int64_t restart_delay_ms_ = 0;
    bool stopped_ = false;
};

} // namespace sniproxy
