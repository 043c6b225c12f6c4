// channel_peer.h: test-only ways to talk on a worker channel: playing a misbehaving peer
// (any type with any descriptors) and reading a connection message's infos in one call.
#pragma once

#include "channel.h"
#include "protocol.h"

#include <span>
#include <string>
#include <variant>

namespace sniproxy::test {

inline int send_message_with_fds(
    int channel, Msg type, std::span<const std::uint8_t> payload, std::span<const int> fds)
{
    return send_message(channel, type, payload, fds);
}

inline int send_connection(int channel, int client_fd, const ConnectionInfo& info)
{
    return send_connections(channel, { &client_fd, 1 }, { &info, 1 });
}

// The infos of a connection message, as the worker decodes it; false if it would refuse it.
inline bool parse_connections(Received& m, std::span<ConnectionInfo> out)
{
    FromParent msg;
    std::string err;
    if (!decode_from_parent(m, &msg, &err) || !std::holds_alternative<ConnectionsMsg>(msg))
        return false;
    const auto& c = std::get<ConnectionsMsg>(msg);
    for (std::size_t i = 0; i < c.count && i < out.size(); i++)
        out[i] = c.infos[i];
    return true;
}

} // namespace sniproxy::test
