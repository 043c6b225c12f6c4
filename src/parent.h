// parent.h: the privileged parent: accepts, hands connections to workers, supervises them,
// rolls them over on SIGHUP and drains them on SIGTERM. It never reads client data.
#pragma once

#include "channel.h"
#include "event_ptr.h"
#include "fd.h"
#include "options.h"

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sniproxy {

// How this parent was started, so that SIGUSR2 can start the (new) binary the same way.
struct Invocation {
    std::string exe; // path of the binary at start-up; a new file there is what SIGUSR2 runs
    std::vector<std::string> args;
    pid_t upgrade_from = 0; // we are the new binary of an upgrade: the old parent's pid
};

struct WorkerIdentity {
    uid_t uid = 0;
    gid_t gid = 0;
    bool jail = false; // root: chroot and setuid; otherwise sandbox only
};

class Parent {
public:
    Parent(const Options& options, Invocation invocation, std::vector<UniqueFd> listeners,
        WorkerIdentity identity, std::size_t max_per_worker);
    ~Parent();
    Parent(const Parent&) = delete;
    Parent& operator=(const Parent&) = delete;

    int run(); // returns the exit status

private:
    struct Worker {
        pid_t pid = -1;
        UniqueFd channel;
        EventPtr read_event;
        EventPtr write_event; // armed while connections wait for room in the channel
        unsigned generation = 0;
        std::size_t inflight = 0; // handed over and not yet reported closed
        bool ready = false;
        bool draining = false;
        bool drain_owed = false; // the drain message waits for room in the channel
        bool superseded = false; // killed by a rollover before it was ready
        std::int64_t started_ns = 0;
        std::int64_t drain_deadline_ns = 0; // when draining: killed if still alive then
    };
    struct Pending {
        UniqueFd fd;
        ConnectionInfo info;
    };

    static void on_accept(evutil_socket_t fd, short, void* arg);
    static void on_worker_readable(evutil_socket_t fd, short, void* arg);
    static void on_worker_writable(evutil_socket_t fd, short, void* arg);
    static void on_signal(evutil_socket_t sig, short, void* arg);
    static void on_resume(evutil_socket_t, short, void* arg);
    static void on_respawn(evutil_socket_t, short, void* arg);
    static void on_force_kill(evutil_socket_t, short, void* arg);

    bool spawn_worker(unsigned generation);
    void accept_batch(int listener);
    bool hand_over(std::span<Pending> batch);
    Worker* least_loaded();
    void flush_pending();
    void set_accepting(bool on);
    void update_accepting();
    void read_worker(Worker& w);
    void reap_children();
    void worker_exited(std::unique_ptr<Worker> w, int status);
    void check_generation_ready();
    void rollover();
    void drain(Worker& w);
    void send_drain(Worker& w);
    void arm_backstop();
    void stop(bool immediately);
    void upgrade();

    const Options& options_;
    Invocation invocation_;
    WorkerIdentity identity_;
    std::size_t max_per_worker_;
    int worker_count_;
    EventBasePtr base_;
    std::vector<UniqueFd> listeners_;
    std::vector<EventPtr> listen_events_;
    std::vector<EventPtr> signal_events_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::deque<Pending> pending_;
    EventPtr resume_event_; // re-enables accept after EMFILE
    EventPtr respawn_event_;
    EventPtr kill_event_; // the grace backstop: armed for the earliest drain deadline
    unsigned generation_ = 0;
    pid_t upgrade_child_ = -1; // the new binary started by SIGUSR2, until it takes over
    int respawn_needed_ = 0;
    std::int64_t respawn_delay_ms_ = 0;
    bool recovery_logged_ = false; // the end of the current crash loop was logged
    bool accepting_ = false;
    bool stopping_ = false;
    bool fd_exhausted_logged_ = false;
};

} // namespace sniproxy
