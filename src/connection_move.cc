// connection_move.cc: an established connection leaving this worker for one of a newer
// generation (issue 15): its moving message and relay state out, and the other end, a
// connection adopted from such a message, relaying on as if it had been here all along.
#include "config.h"

#include "connection.h"

#include "channel.h"
#include "log.h"
#include "relay.h"

#include <algorithm>
#include <string>
#include <utility>

namespace sniproxy {

bool Connection::export_moving(Encoded* out, RelayState* state)
{
    if (!established())
        return false;
    const std::size_t strings
        = sni_.size() + route_.size() + via_.size() + alpn_.size() + ja4_.size();
    if (relay_->pending_bytes() + strings > moving_room)
        return false;
    *state = relay_->export_state();
    MovingMsg m;
    m.id = id_;
    m.accepted_ns = accepted_ns_;
    m.routed_ns = routed_ns_;
    m.peer = peer_;
    m.source = source_;
    m.sni = sni_;
    m.route = route_;
    m.via = via_;
    m.alpn = alpn_;
    m.ja4 = ja4_;
    for (auto [from, to] : { std::pair { &state->up, &m.up }, { &state->down, &m.down } })
        *to = { from->bytes, from->eof, from->shut, from->splicing,
            static_cast<std::uint32_t>(from->in_pipe), from->pending };
    m.moved = static_cast<std::uint8_t>(std::min(moved_ + 1, 255u));
    std::string err;
    if (!encode_moving(m, out, &err)) {
        logf(LogLevel::err, "connection %u not moved: %s", id_, err.c_str());
        resume(std::move(*state));
        return false;
    }
    return true;
}

void Connection::resume(RelayState state)
{
    relay_ = Relay::import_state(base_, std::move(state), on_relay_done, this);
    relay_->set_idle_timeout(settings_.settings.idle_timeout);
}

std::unique_ptr<Connection> Connection::adopt(event_base* base, const ConnectionSettings& settings,
    const MovingMsg& m, DoneFn done, void* owner)
{
    ConnectionInfo info;
    info.accepted_ns = m.accepted_ns;
    info.id = m.id;
    info.peer = m.peer;
    auto c = std::make_unique<Connection>(base, settings, UniqueFd {}, info, done, owner);
    c->client_.reset();
    c->source_ = m.source;
    c->routed_ns_ = m.routed_ns;
    c->sni_ = m.sni;
    c->route_ = m.route;
    c->via_ = m.via;
    c->alpn_ = m.alpn;
    c->ja4_ = m.ja4;
    c->moved_ = m.moved;
    RelayState state;
    state.client = std::move(m.fds[0]);
    state.backend = std::move(m.fds[1]);
    if (m.up.in_pipe > 0)
        state.pipe = std::move(m.fds[2]);
    for (auto [from, to] : { std::pair { &m.up, &state.up }, { &m.down, &state.down } })
        *to = { from->bytes, from->eof, from->shut, from->splicing, from->in_pipe,
            std::string(from->pending) };
    c->resume(std::move(state));
    return c;
}

} // namespace sniproxy
