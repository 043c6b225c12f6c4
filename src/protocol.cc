// protocol.cc: the encoder and decoder of each parent<->worker message, side by side, so that
// what one side writes and the other checks cannot drift apart.
#include "protocol.h"

#include "protocol_detail.h"

#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sniproxy {

namespace {
    using namespace protocol_detail;

    // One connection's record: the accept time, its id, its flags (1: from a balancer), then
    // the peer's sockaddr_in or sockaddr_in6 zero-padded (family AF_UNSPEC when unknown).
    constexpr std::size_t id_at = sizeof(std::int64_t);
    constexpr std::size_t flags_at = id_at + sizeof(std::uint32_t);
    constexpr std::size_t address_at = flags_at + sizeof(std::uint32_t);
    constexpr std::size_t record_size = address_at + address_room;
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

    Encoded u32_message(Msg type, std::uint32_t v)
    {
        Encoded e { type, std::string(sizeof v, '\0') };
        std::memcpy(e.payload.data(), &v, sizeof v);
        return e;
    }

    // IdList messages: 1..max_ids u32 ids.
    Encoded id_message(Msg type, const IdList& m)
    {
        Encoded e { type, std::string(m.count * sizeof(std::uint32_t), '\0') };
        std::memcpy(e.payload.data(), m.ids, e.payload.size());
        return e;
    }

    bool decode_ids(const Received& m, IdList* out, const char* name, std::string* err)
    {
        const std::size_t n = m.payload_len / sizeof(std::uint32_t);
        if (n == 0 || n > max_ids || m.payload_len % sizeof(std::uint32_t) != 0) {
            *err = std::string(name) + " message of " + std::to_string(m.payload_len) + " bytes";
            return false;
        }
        if (!plain(m, m.payload_len, name, err))
            return false;
        out->count = n;
        std::memcpy(out->ids, m.payload, m.payload_len);
        return true;
    }

    // An IdList message of type T into a FromWorker or FromParent.
    template <class T, class Variant>
    bool ids_into(const Received& m, Variant* out, const char* name, std::string* err)
    {
        T v;
        if (!decode_ids(m, &v, name, err))
            return false;
        *out = v;
        return true;
    }

    constexpr std::size_t source_size = sizeof(std::uint32_t) + address_room;
    constexpr std::size_t verdict_size = sizeof(std::uint32_t) + 1;

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
            info.id = u32(r + id_at);
            const std::uint32_t flags = u32(r + flags_at);
            if (flags > 1) {
                *err = "connection message with flags " + std::to_string(flags);
                return false;
            }
            info.from_balancer = flags == 1;
            if (!decode_address(r + address_at, &info.peer, true, "connection", err))
                return false;
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
        std::memcpy(r + id_at, &infos[i].id, sizeof infos[i].id);
        const std::uint32_t flags = infos[i].from_balancer ? 1 : 0;
        std::memcpy(r + flags_at, &flags, sizeof flags);
        std::memcpy(r + address_at, &infos[i].peer, address_size(infos[i].peer));
    }
    return true;
}

std::size_t connections_in(const Received& m, IdList* ids)
{
    const std::size_t n
        = m.type == Msg::connection ? std::min(m.payload_len / record_size, max_handover) : 0;
    if (ids) {
        ids->count = n;
        for (std::size_t i = 0; i < n; i++)
            ids->ids[i] = u32(m.payload + i * record_size + id_at);
    }
    return n;
}

std::size_t take_ids(std::span<const std::uint32_t> ids, IdList* out)
{
    out->count = std::min(ids.size(), max_ids);
    std::copy_n(ids.begin(), out->count, out->ids);
    return out->count;
}

// DrainMsg.
Encoded encode(const DrainMsg& m)
{
    Encoded e = u32_message(Msg::drain, m.grace_s);
    e.payload.push_back(m.move ? 1 : 0);
    return e;
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

// ClosedMsg, HelloDoneMsg, ShedMsg: the ids.
Encoded encode(const ClosedMsg& m)
{
    return id_message(Msg::closed, m);
}

Encoded encode(const HelloDoneMsg& m)
{
    return id_message(Msg::hello_done, m);
}

Encoded encode(const ShedMsg& m)
{
    return id_message(Msg::shed, m);
}

// SourceMsg: the id, then the address zero-padded.
Encoded encode(const SourceMsg& m)
{
    Encoded e { Msg::source, std::string(source_size, '\0') };
    std::memcpy(e.payload.data(), &m.id, sizeof m.id);
    std::memcpy(e.payload.data() + sizeof m.id, &m.source, address_size(m.source));
    return e;
}

// VerdictMsg: the id, then the verdict as one byte.
Encoded encode(const VerdictMsg& m)
{
    Encoded e = u32_message(Msg::verdict, m.id);
    e.payload.push_back(static_cast<char>(m.verdict));
    return e;
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
        return ids_into<ClosedMsg>(m, out, "closed", err);
    case Msg::hello_done:
        return ids_into<HelloDoneMsg>(m, out, "hello-done", err);
    case Msg::moving: {
        MovingMsg v;
        if (!protocol_detail::decode_moving(m, &v, err))
            return false;
        *out = v;
        return true;
    }
    case Msg::source: {
        SourceMsg s;
        if (!plain(m, source_size, "source", err))
            return false;
        s.id = u32(m.payload);
        if (!decode_address(m.payload + sizeof s.id, &s.source, false, "source", err))
            return false;
        *out = s;
        return true;
    }
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
    case Msg::moving: {
        MovingMsg v;
        if (!protocol_detail::decode_moving(m, &v, err))
            return false;
        *out = v;
        return true;
    }
    case Msg::drain:
        if (!plain(m, sizeof(std::uint32_t) + 1, "drain", err))
            return false;
        if (m.payload[sizeof(std::uint32_t)] > 1) {
            *err = "drain message with move " + std::to_string(m.payload[sizeof(std::uint32_t)]);
            return false;
        }
        *out = DrainMsg { u32(m.payload), m.payload[sizeof(std::uint32_t)] == 1 };
        return true;
    case Msg::shed:
        return ids_into<ShedMsg>(m, out, "shed", err);
    case Msg::verdict: {
        if (!plain(m, verdict_size, "verdict", err))
            return false;
        const std::uint8_t v = m.payload[sizeof(std::uint32_t)];
        if (v > static_cast<std::uint8_t>(Verdict::limit_hellos)) {
            *err = "verdict message with verdict " + std::to_string(v);
            return false;
        }
        *out = VerdictMsg { u32(m.payload), static_cast<Verdict>(v) };
        return true;
    }
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

int send_moving(int channel, const Encoded& m, std::span<const int> fds)
{
    return send_message(channel, m.type, m.bytes(), fds);
}

} // namespace sniproxy
