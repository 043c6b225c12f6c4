// connection.h: one client connection inside a worker, from the first byte of its
// ClientHello to the close of both directions. See connection.cc for the life cycle.
#pragma once

#include "protocol.h"
#include "clienthello.h"
#include "event_ptr.h"
#include "fd.h"
#include "relay.h"
#include "route.h"

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

namespace sniproxy {

class MetricsSlot;

struct ConnectionSettings {
    int hello_timeout_s = 10; // -T, counted from the parent's accept()
    bool all_hashed = false; // -a
    std::size_t max_hello = ClientHelloParser::default_max_hello;
    bool json_log = false; // -o log-format=json
    MetricsSlot* metrics = nullptr; // the worker's counters (null: not counted)
};

class Connection {
public:
    // Called once, as the connection's very last act; the owner then destroys it.
    using DoneFn = void (*)(void* owner, Connection* self);

    Connection(event_base* base, const ConnectionSettings& settings, UniqueFd client,
        const ConnectionInfo& info, DoneFn done, void* owner);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Starts reading the hello; may finish (and call done) before returning.
    void start();
    // Grace expired: close now, counted in the log.
    void abort(const char* result);

private:
    static void on_hello_read(bufferevent* bev, void* arg);
    static void on_hello_event(bufferevent* bev, short what, void* arg);
    static void on_deadline(evutil_socket_t, short, void* arg);
    static void on_relay_done(void* owner, const char* result, int err);
    static void on_alert_written(bufferevent* bev, void* arg);
    static void on_linger_read(bufferevent* bev, void* arg);
    static void on_linger_event(bufferevent* bev, short what, void* arg);
    static void on_linger_timeout(evutil_socket_t, short, void* arg);

    void feed_hello();
    void route_hello();
    void connect_backend(const Route& route);
    void refuse(Alert alert, const char* result, std::string reason, int err = 0);
    sockaddr_storage local_address() const;
    // Logs the connection's line (reason and errno only when given), then sends the alert
    // and lingers, or closes at once.
    void finish(
        const char* result, std::string reason = {}, int err = 0, Alert alert = Alert::none);

    event_base* base_;
    const ConnectionSettings& settings_;
    DoneFn done_;
    void* owner_;
    UniqueFd client_fd_; // until the relay takes it
    BuffereventPtr client_; // the hello phase (and an alert), on client_fd_
    std::unique_ptr<Relay> relay_; // the established connection
    EventPtr timer_;
    std::unique_ptr<ClientHelloParser> parser_; // only while the hello is being read
    std::size_t fed_ = 0;
    std::int64_t accepted_ns_;
    std::int64_t routed_ns_ = 0; // when the route was decided (0: it was not)
    sockaddr_storage peer_ {};
    std::string sni_ = "-";
    std::string route_ = "-";
    bool finished_ = false;
};

} // namespace sniproxy
