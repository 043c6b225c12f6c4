// protocol.cc: the encoder and decoder of each parent<->worker message, side by side, so that
// what one side writes and the other checks cannot drift apart.
#include "protocol.h"

#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sniproxy {

namespace {
    std::size_t address_size(const sockaddr_storage& a)
    {
        switch (a.ss_family) {
        case AF_INET:
            return sizeof(sockaddr_in);
        case AF_INET6:
            return sizeof(sockaddr_in6);
        default:
            return 0;
        }
    }

    // One connection's record: the accept time, then the peer's sockaddr_in or sockaddr_in6
    // zero-padded (family AF_UNSPEC when unknown).
    constexpr std::size_t address_room = sizeof(sockaddr_in6);
    constexpr std::size_t record_size = sizeof(std::int64_t) + address_room;
    static_assert(record_size * max_handover < max_message);

    // Size, then no descriptor: the checks every message without descriptors shares.
    bool plain(const Received& m, std::size_t size, const char* name, std::string* err)
    {
        if (m.payload_len != size) {
            *err = std::string(name) + " message of " + std::to_string(m.payload_len)
                + " bytes (expected " + std::to_string(size) + ")";
            return false;
        }
        if (m.nfds != 0) {
            *err = std::string(name) + " message carrying " + std::to_string(m.nfds)
                + " descriptor(s)";
            return false;
        }
        return true;
    }

    std::uint32_t u32(const std::uint8_t* p)
    {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }

    Encoded u32_message(Msg type, std::uint32_t v)
    {
        Encoded e { type, std::string(sizeof v, '\0') };
        std::memcpy(e.payload.data(), &v, sizeof v);
        return e;
    }

    // ConnectionsMsg.
    bool decode_connections(Received& m, ConnectionsMsg* out, std::string* err)
    {
        if (m.nfds == 0 || m.nfds > max_handover) {
            *err = "connection message with " + std::to_string(m.nfds) + " descriptor(s)";
            return false;
        }
        if (m.payload_len != m.nfds * record_size) {
            *err = "connection message of " + std::to_string(m.payload_len) + " bytes for "
                + std::to_string(m.nfds) + " descriptor(s)";
            return false;
        }
        for (std::size_t i = 0; i < m.nfds; i++) {
            const std::uint8_t* r = m.payload + i * record_size;
            ConnectionInfo& info = out->infos[i];
            info = {};
            std::memcpy(&info.accepted_ns, r, sizeof info.accepted_ns);
            std::memcpy(&info.peer, r + sizeof info.accepted_ns, address_room);
            const std::size_t used = address_size(info.peer);
            if (used == 0 && info.peer.ss_family != AF_UNSPEC) {
                *err = "connection message with address family "
                    + std::to_string(info.peer.ss_family);
                return false;
            }
            // The padding after the address must be zero, as we send it.
            for (std::size_t b = used; b < address_room; b++) {
                if (r[sizeof info.accepted_ns + b] != 0) {
                    *err = "connection message with bytes after the address";
                    return false;
                }
            }
        }
        out->count = m.nfds;
        out->fds = m.fds;
        return true;
    }
} // namespace

bool encode_connections(std::span<const ConnectionInfo> infos, Encoded* out, std::string* err)
{
    if (infos.empty() || infos.size() > max_handover) {
        *err = std::to_string(infos.size()) + " connections in one message";
        return false;
    }
    out->type = Msg::connection;
    out->payload.assign(record_size * infos.size(), '\0');
    for (std::size_t i = 0; i < infos.size(); i++) {
        char* r = out->payload.data() + i * record_size;
        std::memcpy(r, &infos[i].accepted_ns, sizeof infos[i].accepted_ns);
        std::memcpy(r + sizeof infos[i].accepted_ns, &infos[i].peer, address_size(infos[i].peer));
    }
    return true;
}

std::size_t connections_in(const Received& m)
{
    return m.type == Msg::connection ? std::min(m.payload_len / record_size, max_handover) : 0;
}

// DrainMsg.
Encoded encode(const DrainMsg& m)
{
    return u32_message(Msg::drain, m.grace_s);
}

// ReadyMsg.
Encoded encode(const ReadyMsg&)
{
    return { Msg::ready, {} };
}

// LogMsg: a level byte (a syslog priority we use), then the text.
Encoded encode(const LogMsg& m)
{
    Encoded e { Msg::log, std::string(1, static_cast<char>(m.level)) };
    e.payload.append(m.text.substr(0, max_message - 2));
    return e;
}

// ClosedMsg.
Encoded encode(const ClosedMsg& m)
{
    return u32_message(Msg::closed, m.count);
}

bool decode_from_worker(const Received& m, FromWorker* out, std::string* err)
{
    switch (m.type) {
    case Msg::ready:
        if (!plain(m, 0, "ready", err))
            return false;
        *out = ReadyMsg {};
        return true;
    case Msg::log: {
        if (m.payload_len < 1) {
            *err = "empty log message";
            return false;
        }
        if (!plain(m, m.payload_len, "log", err))
            return false;
        const std::uint8_t level = m.payload[0];
        if (level < static_cast<std::uint8_t>(LogLevel::err)
            || level > static_cast<std::uint8_t>(LogLevel::debug)) {
            *err = "log message with level " + std::to_string(level);
            return false;
        }
        *out = LogMsg { static_cast<LogLevel>(level),
            { reinterpret_cast<const char*>(m.payload + 1), m.payload_len - 1 } };
        return true;
    }
    case Msg::closed:
        if (!plain(m, sizeof(std::uint32_t), "closed", err))
            return false;
        *out = ClosedMsg { u32(m.payload) };
        return true;
    default:
        *err = "message type " + std::to_string(static_cast<unsigned>(m.type))
            + " is not one a worker sends";
        return false;
    }
}

bool decode_from_parent(Received& m, FromParent* out, std::string* err)
{
    switch (m.type) {
    case Msg::connection: {
        ConnectionsMsg c;
        if (!decode_connections(m, &c, err))
            return false;
        *out = c;
        return true;
    }
    case Msg::drain:
        if (!plain(m, sizeof(std::uint32_t), "drain", err))
            return false;
        *out = DrainMsg { u32(m.payload) };
        return true;
    default:
        *err = "message type " + std::to_string(static_cast<unsigned>(m.type))
            + " is not one the parent sends";
        return false;
    }
}

int send_connections(int channel, std::span<const int> fds, std::span<const ConnectionInfo> infos)
{
    Encoded e;
    std::string err;
    if (fds.size() != infos.size() || !encode_connections(infos, &e, &err))
        return EINVAL;
    return send_message(channel, e.type, e.bytes(), fds);
}

int send(int channel, const Encoded& m)
{
    return send_message(channel, m.type, m.bytes());
}

} // namespace sniproxy
