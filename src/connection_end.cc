// connection_end.cc: how a connection ends: its one log line and counters, then either a
// prompt close, or a refusal's fatal alert and a short linger for the client's FIN.
#include "config.h"

#include "connection.h"

#include "access_log.h"
#include "channel.h"
#include "listen_address.h"
#include "log.h"
#include "metrics_store.h"

#include <cstring>
#include <utility>

namespace sniproxy {

namespace {
    constexpr timeval linger_time { 1, 0 }; // how long we wait for a refused client's FIN

    // One plaintext TLS record with a fatal alert (RFC 8446 6).
    void write_alert(bufferevent* bev, Alert alert)
    {
        const std::uint8_t record[] = { 21, 3, 3, 0, 2, 2, static_cast<std::uint8_t>(alert) };
        bufferevent_write(bev, record, sizeof record);
    }
} // namespace

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
    r.client = format_address(source_);
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
    r.via = std::move(via_);
    r.alpn = std::move(alpn_);
    r.ja4 = std::string_view(ja4_);
    r.moved = moved_;
    if (log_refusal(refused_by_verdict_))
        log_line(LogLevel::info,
            format_access_line(r, settings_.settings.log_format == LogFormat::json));
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
