// connection.h: one client connection inside a worker, from the first byte of its
// ClientHello to the close of both directions. See connection.cc for the life cycle.
#pragma once

#include "clienthello.h"
#include "compact_address.h"
#include "event_ptr.h"
#include "fd.h"
#include "protocol.h"
#include "proxy_accept.h"
#include "refusal_log.h"
#include "relay.h"
#include "route.h"
#include "settings.h"

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace sniproxy {

class Connection;
class HostsCache;
class MetricsSlot;

struct ConnectionSettings {
    int hello_timeout_s = 10; // -T, counted from the parent's accept()
    bool all_hashed = false; // -a
    std::size_t max_hello = ClientHelloParser::default_max_hello;
    Settings settings; // -o/-f: proxy-from, allow, deny, ...
    // The worker's side of the connection ids (protocol.h), called with the Connection's
    // owner; null in a worker that does not report (tests).
    void (*hello_done)(void* owner, Connection* c) = nullptr; // routed: out of the hello phase
    void (*report_source)(void* owner, Connection* c, const sockaddr_storage& source) = nullptr;
    MetricsSlot* metrics = nullptr; // the worker's counters (null: not counted)
    RefusalLog* refusals = nullptr; // the worker's limit on refusal lines (null: unlimited)
    HostsCache* hosts = nullptr; // the worker's view of the hosts directory (null: lstat each)
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
    // Grace expired or shed: close now, counted in the log.
    void abort(const char* result);

    std::uint32_t id() const { return id_; }
    // Still reading the hello: not routed, not closing.
    bool in_hello() const { return !relay_ && !finished_; }
    // The parent's answer to report_source: go on, or close with the verdict as the result.
    void on_verdict(Verdict verdict);

    // Relaying (past the hello, not ending): it may move to a worker of a newer generation.
    bool established() const { return relay_ && !finished_; }
    // Stops relaying and fills *out with the connection's moving message and *state with its
    // sockets, pipe and pending bytes (the message is encoded, so it needs nothing of this
    // object afterwards). False, with nothing changed, when its state does not fit in one
    // message: it stays here. After a send that failed, resume(*state) carries on.
    bool export_moving(Encoded* out, RelayState* state);
    void resume(RelayState state);
    // A connection moved here from another worker (the message's descriptors taken); it
    // carries on relaying, and its log line counts from its first accept.
    static std::unique_ptr<Connection> adopt(event_base* base, const ConnectionSettings& settings,
        const MovingMsg& m, DoneFn done, void* owner);

private:
    static void on_hello_read(bufferevent* bev, void* arg);
    static void on_hello_event(bufferevent* bev, short what, void* arg);
    static void on_deadline(evutil_socket_t, short, void* arg);
    static void on_relay_done(void* owner, const char* result, int err);
    static void on_alert_written(bufferevent* bev, void* arg);
    static void on_linger_read(bufferevent* bev, void* arg);
    static void on_linger_event(bufferevent* bev, short what, void* arg);
    static void on_linger_timeout(evutil_socket_t, short, void* arg);

    enum class Phase { proxy_header, source_verdict, hello };

    void read_now(); // a first read straight after the hand-over
    // A hello in 1-byte records is ~6x its size on the wire; never hold more than that.
    std::size_t hello_buffer_limit() const { return settings_.max_hello * 6 + 64; }
    void on_readable();
    void feed_proxy_header();
    void proxy_header_done();
    // A balancer's PROXY header named the client (DESIGN.md "Who is the source"): the parent
    // checks and counts the connection under it instead of the balancer (allow/deny, the
    // per-source limits); the hello is read on its answer (on_verdict), and the bytes that
    // arrive meanwhile wait in the buffer.
    void report_source(const sockaddr_storage& source);
    void start_hello(); // what arrived after the header, then the rest
    bool log_refusal(bool refusal) const; // whether to write the line (refusals are limited)
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
    std::unique_ptr<ProxyHeaderDecoder> proxy_; // only while a PROXY header is being read
    std::unique_ptr<ClientHelloParser> parser_; // only while the hello is being read
    Phase phase_ = Phase::hello;
    std::size_t fed_ = 0;
    std::int64_t accepted_ns_;
    std::int64_t routed_ns_ = 0; // when the route was decided (0: it was not)
    CompactAddress peer_; // the TCP peer: the client, or a proxy-from balancer
    bool from_balancer_ = false; // the parent says: a PROXY header comes first
    CompactAddress source_; // the client: peer_, or the source of the balancer's header
    CompactAddress destination_; // the header's destination (AF_UNSPEC: ours)
    std::string sni_ = "-";
    std::string route_ = "-";
    std::string via_; // the balancer, when source_ came from its header
    std::string alpn_; // the protocol that chose an alpn/ entry
    Ja4Text ja4_;
    bool client_eof_ = false; // the client half-closed while its source verdict was pending
    bool refused_by_verdict_ = false; // its line is a refusal's, rate-limited
    bool finished_ = false;
    std::uint32_t id_ = 0;
    unsigned moved_ = 0; // how often it moved to a newer generation
};

} // namespace sniproxy
