// worker_loop.h: the jailed worker's event loop as a class, shared by the files that
// implement it: worker.cc (the channel from the parent, connections, drain), worker_outbox.cc
// (records and reports back to the parent, in batches), worker_move.cc (handing established
// connections over on a rollover). Internal to the worker; worker.h is its entry point.
#pragma once

#include "connection.h"
#include "event_ptr.h"
#include "log.h"
#include "metrics_store.h"
#include "options.h"
#include "protocol.h"
#include "refusal_log.h"
#include "settings.h"

#include <sys/time.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sniproxy::worker_loop {

class Worker {
public:
    Worker(const Options& o, Settings settings, EventBasePtr base, MetricsSlot& metrics,
        HostsCache* hosts = nullptr)
        : options_(o)
        , channel_(o.worker.channel_fd)
        , base_(std::move(base))
        , metrics_(metrics)
    {
        settings_.hello_timeout_s = o.hello_timeout;
        settings_.all_hashed = o.all_hashed;
        settings_.hello_done = on_hello_done;
        settings_.report_source = on_report_source;
        settings_.settings = std::move(settings);
        settings_.metrics = &metrics;
        settings_.refusals = &refusals_;
        settings_.hosts = hosts;
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

inline constexpr std::size_t max_queued_logs = 4096;
inline constexpr timeval flush_delay { 0, 10000 }; // 10 ms

} // namespace sniproxy::worker_loop
