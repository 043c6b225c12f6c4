// connection.cc: the life of one connection in a worker.
//   1. hello: read through a bufferevent, feeding only new bytes to the parser, under a
//      deadline counted from the parent's accept();
//   2. route: validate the SNI, look up exact / wildcard / _default by existence;
//   3. connect to HOST/tls-socket, write the optional PROXY header, replay every byte the
//      client sent (copied once from the bufferevent's input into the first write, after
//      the header, unchanged and never re-framed);
//   4. forward both ways with bounded buffers and half-close, until both directions end.
// Refusals send a fatal alert where one applies, then close promptly.
#include "connection.h"

#include "access_log.h"
#include "channel.h"
#include "listen_address.h"
#include "log.h"
#include "metrics_store.h"
#include "proxy_header.h"
#include "relay.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace sniproxy {

namespace {
    constexpr timeval linger_time { 1, 0 }; // how long we wait for a refused client's FIN

    // One plaintext TLS record with a fatal alert (RFC 8446 6).
    void write_alert(bufferevent* bev, Alert alert)
    {
        const std::uint8_t record[] = { 21, 3, 3, 0, 2, 2, static_cast<std::uint8_t>(alert) };
        bufferevent_write(bev, record, sizeof record);
    }

    const char* backend_result(int err)
    {
        switch (err) {
        case ECONNREFUSED:
            return "backend-refused";
        case ENOENT:
            return "backend-missing";
        case EAGAIN:
            return "backend-busy";
        default:
            return "backend-error";
        }
    }
} // namespace

Connection::Connection(event_base* base, const ConnectionSettings& settings, UniqueFd client,
    const ConnectionInfo& info, DoneFn done, void* owner)
    : base_(base)
    , settings_(settings)
    , done_(done)
    , owner_(owner)
    , accepted_ns_(info.accepted_ns)
    , peer_(info.peer)
{
    if (peer_.ss_family == AF_UNSPEC) { // the parent did not say
        socklen_t len = sizeof peer_;
        getpeername(client.get(), reinterpret_cast<sockaddr*>(&peer_), &len);
    }
    // TCP_NODELAY comes from the listening socket (Linux copies it to accepted ones).
    client_fd_ = std::move(client);
    // The bufferevent serves the hello (and an alert); the fd stays ours for the relay.
    client_.reset(bufferevent_socket_new(base, client_fd_.get(), 0));
}

Connection::~Connection() = default;

void Connection::start()
{
    if (!client_)
        return finish("internal-error", "bufferevent-failed");
    parser_ = std::make_unique<ClientHelloParser>(settings_.max_hello);
    timer_.reset(evtimer_new(base_, on_deadline, this));
    const std::int64_t left_ns
        = std::int64_t { settings_.hello_timeout_s } * 1000000000 - (monotonic_ns() - accepted_ns_);
    if (left_ns <= 0)
        return finish("timeout");
    const timeval left { static_cast<time_t>(left_ns / 1000000000),
        static_cast<suseconds_t>(left_ns % 1000000000 / 1000) };
    evtimer_add(timer_.get(), &left);
    bufferevent_setcb(client_.get(), on_hello_read, nullptr, on_hello_event, this);
    // A hello in 1-byte records is ~6x its size on the wire; never hold more than that.
    bufferevent_setwatermark(client_.get(), EV_READ, 0, settings_.max_hello * 6 + 64);
    bufferevent_enable(client_.get(), EV_READ);
}

void Connection::abort(const char* result)
{
    if (finished_) // lingering after an alert: just go
        return done_(owner_, this);
    finish(result);
}

void Connection::on_hello_read(bufferevent*, void* arg)
{
    static_cast<Connection*>(arg)->feed_hello();
}

void Connection::on_hello_event(bufferevent*, short what, void* arg)
{
    auto* self = static_cast<Connection*>(arg);
    self->finish(what & BEV_EVENT_EOF ? "client-closed" : "client-error", {},
        what & BEV_EVENT_ERROR ? EVUTIL_SOCKET_ERROR() : 0);
}

void Connection::on_deadline(evutil_socket_t, short, void* arg)
{
    static_cast<Connection*>(arg)->finish("timeout");
}

// Feeds the parser only the bytes it has not seen; the buffer itself stays untouched so it
// can be replayed to the backend exactly as received.
void Connection::feed_hello()
{
    evbuffer* in = bufferevent_get_input(client_.get());
    const std::size_t len = evbuffer_get_length(in);
    while (fed_ < len && parser_->status() == ClientHelloParser::Status::need_more) {
        evbuffer_ptr pos;
        evbuffer_ptr_set(in, &pos, fed_, EVBUFFER_PTR_SET);
        evbuffer_iovec vec[8];
        const int n
            = std::min(evbuffer_peek(in, static_cast<ev_ssize_t>(len - fed_), &pos, vec, 8), 8);
        for (int i = 0; i < n && parser_->status() == ClientHelloParser::Status::need_more; i++) {
            const std::size_t take = std::min(vec[i].iov_len, len - fed_);
            parser_->feed({ static_cast<const std::uint8_t*>(vec[i].iov_base), take });
            fed_ += take;
        }
    }
    switch (parser_->status()) {
    case ClientHelloParser::Status::need_more:
        return;
    case ClientHelloParser::Status::error:
        return refuse(parser_->alert(), "bad-hello", hello_error_string(parser_->error()));
    case ClientHelloParser::Status::done:
        return route_hello();
    }
}

void Connection::route_hello()
{
    const HelloInfo& hello = parser_->info();
    RouteDecision d = decide_route(hello, settings_.all_hashed, path_exists);
    routed_ns_ = monotonic_ns();
    sni_ = d.sni;
    if (d.status == RouteStatus::bad_sni)
        return refuse(Alert::unrecognized_name, "bad-sni", d.reason);
    if (d.status == RouteStatus::no_route)
        return refuse(Alert::unrecognized_name, "no-route", "");
    route_ = d.route.name;
    timer_.reset();
    connect_backend(d.route); // the last act: the relay may finish us at once
}

void Connection::connect_backend(const Route& route)
{
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    if (!fd || route.socket.size() >= sizeof sun.sun_path)
        return refuse(Alert::internal_error, "backend-error", {}, fd ? ENAMETOOLONG : errno);
    std::memcpy(sun.sun_path, route.socket.data(), route.socket.size());
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0
        && errno != EINPROGRESS) {
        const int err = errno;
        return refuse(Alert::internal_error, backend_result(err), {}, err);
    }
    // What the backend gets first: the PROXY header, then every byte the client sent so far,
    // exactly as received.
    std::vector<std::uint8_t> first;
    if (route.proxy == ProxyHeader::v1) {
        const std::string h = proxy_v1_header(peer_, local_address());
        first.assign(h.begin(), h.end());
    } else if (route.proxy == ProxyHeader::v2) {
        const std::vector<std::string>& alpn = parser_->info().alpn;
        first = proxy_v2_header(peer_, local_address(), sni_ == "-" ? "" : sni_,
            alpn.empty() ? std::string_view {} : std::string_view(alpn.front()));
    }
    const std::size_t header = first.size();
    evbuffer* in = bufferevent_get_input(client_.get());
    first.resize(header + evbuffer_get_length(in));
    evbuffer_remove(in, first.data() + header, first.size() - header);
    parser_.reset();
    client_.reset(); // from here on the relay reads the client's socket itself
    relay_
        = std::make_unique<Relay>(base_, std::move(client_fd_), std::move(fd), on_relay_done, this);
    relay_->start(first, header);
}

void Connection::on_relay_done(void* owner, const char* result, int err)
{
    static_cast<Connection*>(owner)->finish(result, {}, err);
}

// Our end of the client's TCP connection, needed only for a PROXY header: not kept, to keep
// an established connection small.
sockaddr_storage Connection::local_address() const
{
    sockaddr_storage local {};
    socklen_t len = sizeof local;
    getsockname(client_fd_.get(), reinterpret_cast<sockaddr*>(&local), &len);
    return local;
}

void Connection::refuse(Alert alert, const char* result, std::string reason, int err)
{
    parser_.reset();
    finish(result, std::move(reason), err, alert);
}

void Connection::on_alert_written(bufferevent* bev, void*)
{
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

void Connection::on_linger_read(bufferevent* bev, void*)
{
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

void Connection::on_linger_event(bufferevent*, short, void* arg)
{
    auto* self = static_cast<Connection*>(arg);
    self->done_(self->owner_, self);
}

void Connection::on_linger_timeout(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Connection*>(arg);
    self->done_(self->owner_, self);
}

void Connection::finish(const char* result, std::string reason, int err, Alert alert)
{
    if (finished_)
        return;
    finished_ = true;
    AccessRecord r;
    r.client = format_address(peer_);
    r.sni = std::move(sni_);
    r.route = std::move(route_);
    r.result = result;
    r.reason = std::move(reason);
    if (err != 0)
        r.error = std::strerror(err);
    r.alert = static_cast<int>(alert);
    r.up = relay_ ? relay_->up() : 0;
    r.down = relay_ ? relay_->down() : 0;
    r.ms = (monotonic_ns() - accepted_ns_) / 1000000;
    log_line(LogLevel::info, format_access_line(r, settings_.json_log));
    if (settings_.metrics) // route: a hosts-directory name or "-", never the SNI
        settings_.metrics->connection_done(r.route, r.result, r.up, r.down,
            routed_ns_ ? static_cast<double>(routed_ns_ - accepted_ns_) / 1e9 : -1.0);
    timer_.reset();
    if (alert == Alert::none || !client_) {
        client_.reset();
        client_fd_.reset();
        return done_(owner_, this); // destroys us, and the relay with its sockets
    }
    // Send the alert, then wait briefly for the client to close, so that our close does not
    // turn into a reset that destroys the alert before the client has read it.
    write_alert(client_.get(), alert);
    bufferevent_setwatermark(client_.get(), EV_READ, 0, 0);
    bufferevent_setwatermark(client_.get(), EV_WRITE, 0, 0);
    bufferevent_setcb(client_.get(), on_linger_read, on_alert_written, on_linger_event, this);
    bufferevent_enable(client_.get(), EV_READ | EV_WRITE);
    on_linger_read(client_.get(), this);
    timer_.reset(evtimer_new(base_, on_linger_timeout, this));
    evtimer_add(timer_.get(), &linger_time);
}

} // namespace sniproxy
