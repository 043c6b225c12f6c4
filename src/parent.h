// parent.h: the privileged parent: the libevent glue around the Dispatcher (accept and hand
// over) and the Supervisor (the workers' lives), and the real Spawner behind them (fork + exec,
// socketpairs). It never reads client data.
#pragma once

#include "accept_gate.h"
#include "accept_pacer.h"
#include "dispatcher.h"
#include "event_ptr.h"
#include "fd.h"
#include "identity.h"
#include "metrics_schema.h"
#include "options.h"
#include "settings.h"
#include "supervisor.h"
#include "workers.h"

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace sniproxy {

class MetricsProcess;

// How this parent was started, so that SIGUSR2 can start the (new) binary the same way.
struct Invocation {
    std::string exe; // path of the binary at start-up; a new file there is what SIGUSR2 runs
    std::vector<std::string> args;
    pid_t upgrade_from = 0; // we are the new binary of an upgrade: the old parent's pid
    UniqueFd upgrade_channel; // and its end of the channel connections move over (or none)
};

class Parent final : private Spawner {
public:
    // `metrics` (null when -o metrics is off) outlives the Parent.
    Parent(const Options& options, Settings settings, Invocation invocation,
        std::vector<UniqueFd> listeners, Identity identity, std::size_t max_per_worker,
        MetricsProcess* metrics);
    ~Parent() override;
    Parent(const Parent&) = delete;
    Parent& operator=(const Parent&) = delete;

    int run(); // returns the exit status

private:
    // Messages read from one channel (a worker's, the upgrade's) per wake-up: a peer that
    // writes without pause must not keep the parent from accepting (the event fires again).
    static constexpr int max_messages_per_read = 256;
    class Channel;
    class UpgradeChannel;

    bool spawn_worker(unsigned generation, WorkerSlot* out, std::string* err) override;
    bool spawn_upgrade(pid_t* pid, std::string* err) override;
    void kill(pid_t pid, int sig) override;

    static void on_accept(evutil_socket_t fd, short, void* arg);
    static void on_signal(evutil_socket_t sig, short, void* arg);
    static void on_resume(evutil_socket_t, short, void* arg);
    static void on_tick(evutil_socket_t, short, void* arg);
    static void on_second(evutil_socket_t, short, void* arg);

    void accept_batch(int listener);
    void read_worker(WorkerSlot& w);
    void reap_children();
    void open_upgrade_channel(UniqueFd fd, bool to_successor); // parent_upgrade.cc
    void reload_settings(); // SIGHUP: the -f file again
    void sync(); // mirrors the decisions' state into listen events, timers and the loop
    void sync_metrics(); // the workers' states into the metrics region
    // THE call point for a connection the parent refuses itself (denied, limit-*, shed):
    // counted in sniproxyd_rejected_total{reason}.
    void count_rejected(RejectReason reason);

    const Options& options_;
    Settings settings_; // given to each new worker; replaced by a good -f file on SIGHUP
    AcceptGate gate_;
    Invocation invocation_;
    Identity identity_;
    std::size_t max_per_worker_;
    int worker_count_;
    MetricsProcess* metrics_;
    EventBasePtr base_;
    std::vector<UniqueFd> listeners_;
    std::vector<EventPtr> listen_events_;
    std::vector<AcceptPacer> pacers_; // one per listener, same order
    std::vector<EventPtr> signal_events_;
    EventPtr resume_event_; // Dispatcher::paused_until_ns
    EventPtr respawn_event_; // Supervisor::next_respawn_ns
    EventPtr kill_event_; // Supervisor::next_backstop_ns
    EventPtr second_event_; // AcceptGate::tick
    std::int64_t resume_armed_ = 0, respawn_armed_ = 0, kill_armed_ = 0;
    MonotonicClock clock_;
    WorkerList workers_;
    Dispatcher dispatcher_;
    Supervisor supervisor_;
    // The hosts directory as the current generation found it (opened at its first spawn):
    // a worker respawned after a crash enters the same tree, even if the hosts symlink has
    // been swapped since. A new tree takes effect only with a new generation (SIGHUP).
    UniqueFd generation_dir_;
    unsigned generation_dir_of_ = 0;
    std::unique_ptr<UpgradeChannel> upgrade_channel_; // SIGUSR2's, either side
    bool accepting_ = false;
    bool fd_exhausted_logged_ = false;
};

} // namespace sniproxy
