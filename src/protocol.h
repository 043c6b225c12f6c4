// protocol.h: every message between the parent and a worker, typed, with its encoder and its
// decoder side by side in protocol.cc (channel.h only moves the bytes and descriptors).
// A decoder checks sizes, values and descriptors and fails with a sentence; the receiver
// treats any failure, or a message its state does not expect, as a protocol violation: the
// parent replaces the worker, a worker exits. To add a message: a type in `Msg`, a struct
// here, its encode/decode in protocol.cc, and a case in FromParent or FromWorker.
#pragma once

#include "channel.h"
#include "log.h"

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace sniproxy {

enum class Msg : std::uint8_t {
    connection = 'C', // parent -> worker: ConnectionsMsg
    drain = 'D', // parent -> worker: DrainMsg
    ready = 'R', // worker -> parent: ReadyMsg
    log = 'L', // worker -> parent: LogMsg
    closed = 'X', // worker -> parent: ClosedMsg
};

// What the parent knows of a connection it hands over: when accept() returned (the hello
// deadline counts from then) and the client's address (from accept(), so the worker need not
// ask the kernel again). peer.ss_family is AF_UNSPEC when unknown.
struct ConnectionInfo {
    std::int64_t accepted_ns = 0;
    sockaddr_storage peer {};
};

// Connections accepted together leave together: one message, one system call, one wake-up
// of the worker for up to this many.
constexpr std::size_t max_handover = 16;
static_assert(max_handover <= max_fds_per_message);

// parent -> worker: 1..max_handover client sockets (SCM_RIGHTS), one info record each.
struct ConnectionsMsg {
    std::size_t count = 0;
    ConnectionInfo infos[max_handover];
    UniqueFd* fds = nullptr; // decoded: the Received's descriptors, `count` of them
};
// parent -> worker: take no more, finish within the grace, exit.
struct DrainMsg {
    std::uint32_t grace_s = 0;
};
// worker -> parent: sandboxed and serving.
struct ReadyMsg { };
// worker -> parent: one log record (text already escaped by the worker, escaped again by the
// parent since the worker is not trusted).
struct LogMsg {
    LogLevel level = LogLevel::info;
    std::string_view text;
};
// worker -> parent: this many handed-over connections have ended since the last count.
struct ClosedMsg {
    std::uint32_t count = 0;
};

using FromParent = std::variant<ConnectionsMsg, DrainMsg>;
using FromWorker = std::variant<ReadyMsg, LogMsg, ClosedMsg>;

// One message ready for the channel: its type byte and payload.
struct Encoded {
    Msg type {};
    std::string payload;
    std::span<const std::uint8_t> bytes() const
    {
        return { reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size() };
    }
};

Encoded encode(const DrainMsg& m);
Encoded encode(const ReadyMsg& m);
Encoded encode(const LogMsg& m); // cuts the text to what one message holds
Encoded encode(const ClosedMsg& m);
// The records of a connection message for infos.size() descriptors (1..max_handover).
bool encode_connections(std::span<const ConnectionInfo> infos, Encoded* out, std::string* err);

// Decodes what a worker sent / what the parent sent. False (with the reason) for an unknown
// type, a wrong size, a value out of range, or descriptors where none belong or not exactly
// as many as announced. Descriptors of a refused message close with `m`.
bool decode_from_worker(const Received& m, FromWorker* out, std::string* err);
bool decode_from_parent(Received& m, FromParent* out, std::string* err);

// How many connections a connection message announces by its records, even when it is
// unusable: the parent counted them as handed over, so the worker reports them ended.
std::size_t connections_in(const Received& m);

// Sending: each returns 0 or an errno value (EAGAIN: the channel is full right now), since the
// callers branch on which. fds and infos have the same length, 1 to max_handover.
int send_connections(int channel, std::span<const int> fds, std::span<const ConnectionInfo> infos);
int send(int channel, const Encoded& m);

} // namespace sniproxy
