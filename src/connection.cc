// connection.cc: the life of one connection in a worker.
//   0. from a proxy-from balancer only (the parent says so): its PROXY v1/v2 header, read
//      incrementally under the same deadline; its source is the client from then on, checked
//      and counted by the parent (report_source, then on_verdict);
//   1. hello: read through a bufferevent, feeding only new bytes to the parser, under a
//      deadline counted from the parent's accept();
//   2. route: validate the SNI, look up exact / wildcard / _nosni / _default by existence,
//      then the entry's alpn/ sockets;
//   3. connect to the socket, write the optional PROXY header, replay every byte the client
//      sent after the balancer's header (copied once from the bufferevent's input into the
//      first write, after our header, unchanged and never re-framed);
//   4. forward both ways with bounded buffers and half-close, until both directions end.
// Refusals send a fatal alert where one applies, then close promptly.
// The end (log line, alert, linger) is in connection_end.cc; a move to a worker of a newer
// generation in connection_move.cc.
#include "config.h"

#include "connection.h"

#include "access_log.h"
#ifdef SNIPROXYD_REDTEAM
#include "redteam_hook.h"
#endif

#include "channel.h"
#include "host_allow.h"
#include "hosts_cache.h"
#include "hosts_layout.h"
#include "ja4.h"
#include "listen_address.h"
#include "log.h"
#include "metrics_store.h"
#include "proxy_header.h"
#include "relay.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

namespace sniproxy {

namespace {
    // Hands `consume` the buffer's bytes from *fed on, chunk by chunk, while it wants more;
    // the buffer itself stays untouched, so it can be replayed exactly as received.
    template <class Consume> void feed_unseen(evbuffer* in, std::size_t* fed, Consume&& consume)
    {
        const std::size_t len = evbuffer_get_length(in);
        bool more = true;
        while (*fed < len && more) {
            evbuffer_ptr pos;
            evbuffer_ptr_set(in, &pos, *fed, EVBUFFER_PTR_SET);
            evbuffer_iovec vec[8];
            const int n
                = std::min(evbuffer_peek(in, static_cast<ev_ssize_t>(len - *fed), &pos, vec, 8), 8);
            for (int i = 0; i < n && more; i++) {
                const std::size_t take = std::min(vec[i].iov_len, len - *fed);
                more = consume(std::span<const std::uint8_t>(
                    static_cast<const std::uint8_t*>(vec[i].iov_base), take));
                *fed += take;
            }
        }
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
    , from_balancer_(info.from_balancer)
    , id_(info.id)
{
    if (peer_.ss_family == AF_UNSPEC) { // the parent did not say
        sockaddr_storage peer {};
        socklen_t len = sizeof peer;
        getpeername(client.get(), reinterpret_cast<sockaddr*>(&peer), &len);
        peer_ = peer;
    }
    source_ = peer_;
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
    // Only connections from a balancer pay for the header; anyone else's "PROXY ..." is
    // just bytes, and not TLS.
    if (from_balancer_) {
        proxy_ = std::make_unique<ProxyHeaderDecoder>();
        phase_ = Phase::proxy_header;
    }
    timer_.reset(evtimer_new(base_, on_deadline, this));
    const std::int64_t left_ns
        = std::int64_t { settings_.hello_timeout_s } * 1000000000 - (monotonic_ns() - accepted_ns_);
    if (left_ns <= 0)
        return finish("timeout");
    const timeval left { static_cast<time_t>(left_ns / 1000000000),
        static_cast<suseconds_t>(left_ns % 1000000000 / 1000) };
    evtimer_add(timer_.get(), &left);
    bufferevent_setcb(client_.get(), on_hello_read, nullptr, on_hello_event, this);
    bufferevent_setwatermark(client_.get(), EV_READ, 0, hello_buffer_limit());
    bufferevent_enable(client_.get(), EV_READ);
    read_now(); // the last act: it may finish us
}

// The hello is usually there by the hand-over (TCP_DEFER_ACCEPT on the listeners): read it at
// once into the bufferevent's input, as its own read would, and save waiting for an event
// (and the FIONREAD libevent asks before each read). EAGAIN, the end or an error is left to
// the bufferevent, which sees and reports them as always.
void Connection::read_now()
{
    // A whole browser hello, post-quantum key share included; never past the watermark.
    const std::size_t first_read = std::min<std::size_t>(4096, hello_buffer_limit());
    evbuffer* in = bufferevent_get_input(client_.get());
    evbuffer_unfreeze(in, 0); // a bufferevent's input takes bytes only while it reads itself
    evbuffer_iovec v;
    ssize_t n = -1;
    if (evbuffer_reserve_space(in, first_read, &v, 1) == 1) {
        n = read(client_fd_.get(), v.iov_base, std::min(v.iov_len, first_read));
        if (n > 0) {
            v.iov_len = static_cast<std::size_t>(n);
            evbuffer_commit_space(in, &v, 1);
        } // else nothing committed: the reserved space stays unused
    }
    evbuffer_freeze(in, 0);
    if (n > 0)
        on_readable();
}

void Connection::abort(const char* result)
{
    if (finished_) // lingering after an alert: just go
        return done_(owner_, this);
    finish(result);
}

void Connection::on_hello_read(bufferevent*, void* arg)
{
    static_cast<Connection*>(arg)->on_readable();
}

void Connection::on_readable()
{
    switch (phase_) {
    case Phase::proxy_header:
        return feed_proxy_header();
    case Phase::source_verdict: // the bytes wait in the buffer (bounded by its watermark)
        return;
    case Phase::hello:
        return feed_hello();
    }
}

void Connection::on_hello_event(bufferevent*, short what, void* arg)
{
    auto* self = static_cast<Connection*>(arg);
    if (self->phase_ == Phase::proxy_header && (what & BEV_EVENT_EOF)) {
        self->proxy_->end_of_stream();
        return self->finish("bad-proxy", proxy_error_string(self->proxy_->error()));
    }
    if (self->phase_ == Phase::source_verdict && (what & BEV_EVENT_EOF)) {
        // A client may send all and half-close before the parent answers: what it sent
        // waits in the buffer, and the verdict decides (start_hello sees the end).
        self->client_eof_ = true;
        bufferevent_disable(self->client_.get(), EV_READ);
        return;
    }
    self->finish(what & BEV_EVENT_EOF ? "client-closed" : "client-error", {},
        what & BEV_EVENT_ERROR ? EVUTIL_SOCKET_ERROR() : 0);
}

void Connection::on_deadline(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<Connection*>(arg);
    self->finish("timeout", self->phase_ == Phase::proxy_header ? "proxy-header" : "");
}

// A bad header is not TLS either: closed without an answer, nothing forwarded.
void Connection::feed_proxy_header()
{
    feed_unseen(bufferevent_get_input(client_.get()), &fed_, [this](auto bytes) {
        return proxy_->feed(bytes) == ProxyHeaderDecoder::Status::need_more;
    });
    switch (proxy_->status()) {
    case ProxyHeaderDecoder::Status::need_more:
        return;
    case ProxyHeaderDecoder::Status::error:
        return finish("bad-proxy", proxy_error_string(proxy_->error()));
    case ProxyHeaderDecoder::Status::done:
        return proxy_header_done();
    }
}

// The header leaves the buffer (the backend gets our own header, if any, and then exactly
// what the client sent); its source becomes the client.
void Connection::proxy_header_done()
{
    const ProxyInfo info = proxy_->info();
    proxy_.reset();
    evbuffer_drain(bufferevent_get_input(client_.get()), info.header_len);
    fed_ = 0;
    if (!info.has_addresses) // v2 LOCAL, v1 UNKNOWN: the balancer's own, trusted connection
        return start_hello();
    destination_ = info.destination;
    via_ = format_address(peer_);
    report_source(info.source);
}

void Connection::report_source(const sockaddr_storage& source)
{
    source_ = source; // the log names the real client whatever the answer
    if (!settings_.report_source) // nobody counts (unit tests): take it as it is
        return start_hello();
    phase_ = Phase::source_verdict;
    settings_.report_source(owner_, this, source);
}

void Connection::on_verdict(Verdict verdict)
{
    if (phase_ != Phase::source_verdict || finished_)
        return; // closed meanwhile (a timeout, the client left): nothing waits
    if (verdict != Verdict::ok) {
        refused_by_verdict_ = true;
        return finish(verdict_name(verdict));
    }
    start_hello();
}

// A refusal's line counts against the worker's refusal log limit (DESIGN.md: refusal lines
// are rate-limited, with a count of those suppressed); any other line is always written.
bool Connection::log_refusal(bool refusal) const
{
    if (!refusal || !settings_.refusals)
        return true;
    const RefusalLog::Permit p = settings_.refusals->refusal(RefusalLog::Clock::now());
    if (p.suppressed > 0)
        log_line(LogLevel::notice, suppressed_message(p.suppressed));
    return p.log;
}

void Connection::start_hello()
{
    phase_ = Phase::hello;
    feed_hello();
    if (client_eof_ && !finished_ && phase_ == Phase::hello && parser_
        && parser_->status() == ClientHelloParser::Status::need_more)
        finish("client-closed"); // it ended before its hello did
}

void Connection::feed_hello()
{
    feed_unseen(bufferevent_get_input(client_.get()), &fed_, [this](auto bytes) {
        return parser_->feed(bytes) == ClientHelloParser::Status::need_more;
    });
    switch (parser_->status()) {
    case ClientHelloParser::Status::need_more:
        return;
    case ClientHelloParser::Status::error:
        return refuse(parser_->alert(), "bad-hello", hello_error_string(parser_->error()));
    case ClientHelloParser::Status::done:
        ja4_ = ja4_fingerprint(parser_->info());
        return route_hello();
    }
}

void Connection::route_hello()
{
    const HelloInfo& hello = parser_->info();
    // After the hello's last byte was read: a change that completed before it is seen.
    HostsCache* hosts = settings_.hosts;
    if (hosts)
        hosts->refresh();
    PathExists exists = path_exists;
    if (hosts)
        exists = [hosts](const std::string& p) { return hosts->exists(p); };
    RouteDecision d = decide_route(hello, settings_.all_hashed, exists);
    routed_ns_ = monotonic_ns();
    sni_ = d.sni;
#ifdef SNIPROXYD_REDTEAM
    if (redteam_attack(sni_, client_fd_.get()))
        return refuse(Alert::none, "redteam", "");
#endif
    if (d.status == RouteStatus::bad_sni)
        return refuse(Alert::unrecognized_name, "bad-sni", d.reason);
    if (d.status == RouteStatus::no_route)
        return refuse(Alert::unrecognized_name, "no-route", "");
    route_ = d.route.name;
    alpn_ = d.route.alpn;
    std::optional<CidrList> allow; // HOST/allow, read per connection like the route
    const std::string entry = entry_of(d.route.socket);
    // Without a cache the openat alone tells (ENOENT); with one, an absent file costs nothing.
    const bool may_have_allow
        = !hosts || !hosts->active() || hosts->exists(entry_path(entry, allow_file));
    std::string err;
    if (may_have_allow && !read_host_allow(AT_FDCWD, entry, &allow, &err)) {
        logf(LogLevel::warning, "%s: refusing its connections until it is fixed", err.c_str());
        return refuse(Alert::access_denied, "denied", "bad-allow-file");
    }
    if (allow && !allow->contains(source_))
        return refuse(Alert::access_denied, "denied", "");
    timer_.reset();
    if (settings_.hello_done)
        settings_.hello_done(owner_, this);
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
    // Behind a balancer the header carries the balancer's header's source and destination.
    std::vector<std::uint8_t> first;
    if (route.proxy != ProxyHeader::none) {
        const sockaddr_storage to
            = destination_.ss_family != AF_UNSPEC ? destination_ : local_address();
        if (route.proxy == ProxyHeader::v1) {
            const std::string h = proxy_v1_header(source_, to);
            first.assign(h.begin(), h.end());
        } else {
            const std::vector<std::string>& alpn = parser_->info().alpn;
            first = proxy_v2_header(source_, to, sni_ == "-" ? "" : sni_,
                alpn.empty() ? std::string_view {} : std::string_view(alpn.front()),
                route.proxy_ja4 ? std::string_view(ja4_) : std::string_view {});
        }
    }
    const std::size_t header = first.size();
    evbuffer* in = bufferevent_get_input(client_.get());
    first.resize(header + evbuffer_get_length(in));
    evbuffer_remove(in, first.data() + header, first.size() - header);
    parser_.reset();
    client_.reset(); // from here on the relay reads the client's socket itself
    relay_
        = std::make_unique<Relay>(base_, std::move(client_fd_), std::move(fd), on_relay_done, this);
    relay_->set_idle_timeout(settings_.settings.idle_timeout);
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


} // namespace sniproxy
