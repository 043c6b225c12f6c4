// protocol.h: every message between the parent and a worker, typed, with its encoder and its
// decoder side by side in protocol.cc (channel.h only moves the bytes and descriptors).
// A decoder checks sizes, values and descriptors and fails with a sentence; the receiver
// treats any failure, or a message its state does not expect, as a protocol violation: the
// parent replaces the worker, a worker exits. To add a message: a type in `Msg`, a struct
// here, its encode/decode in protocol.cc, and a case in FromParent or FromWorker.
#pragma once

#include "channel.h"
#include "log.h"
#include "source_limits.h"

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
    hello_done = 'H', // worker -> parent: HelloDoneMsg
    source = 'S', // worker -> parent: SourceMsg
    shed = 'K', // parent -> worker: ShedMsg
    verdict = 'V', // parent -> worker: VerdictMsg
    moving = 'M', // worker -> parent and parent -> worker: MovingMsg
};

// What the parent knows of a connection it hands over: when accept() returned (the hello
// deadline counts from then), the id both sides name it by in later messages, and the
// client's address (from accept(), so the worker need not ask the kernel again).
// peer.ss_family is AF_UNSPEC when unknown.
struct ConnectionInfo {
    std::int64_t accepted_ns = 0;
    std::uint32_t id = 0;
    // The peer is a proxy-from balancer: its PROXY header comes first. The parent decides,
    // once, with the lists it has now; the worker never judges this itself.
    bool from_balancer = false;
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
// parent -> worker: take no more, finish within the grace, exit. `move` (a rollover with
// move-connections on): first hand the established connections over (MovingMsg).
struct DrainMsg {
    std::uint32_t grace_s = 0;
    bool move = false;
};
// worker -> parent: sandboxed and serving.
struct ReadyMsg { };
// worker -> parent: one log record (text already escaped by the worker, escaped again by the
// parent since the worker is not trusted).
struct LogMsg {
    LogLevel level = LogLevel::info;
    std::string_view text;
};
// Connection ids, 1..max_ids of them: the payload of several messages.
constexpr std::size_t max_ids = (max_message - 1) / sizeof(std::uint32_t);
struct IdList {
    std::size_t count = 0;
    std::uint32_t ids[max_ids] {};
    std::span<const std::uint32_t> span() const { return { ids, count }; }
};
// worker -> parent: these handed-over connections have ended since the last report (a
// connection whose hello was not reported done ended in its hello phase).
struct ClosedMsg : IdList { };
// worker -> parent: these connections have left the hello phase (routed).
struct HelloDoneMsg : IdList { };
// worker -> parent: the real source of a connection still in its hello phase (from its PROXY
// header). The parent answers with a VerdictMsg.
struct SourceMsg {
    std::uint32_t id = 0;
    sockaddr_storage source {}; // AF_INET or AF_INET6
};
// parent -> worker: close these connections if they are still in their hello phase (shed).
struct ShedMsg : IdList { };
// parent -> worker: the answer to a SourceMsg; anything but ok means close it.
struct VerdictMsg {
    std::uint32_t id = 0;
    Verdict verdict = Verdict::ok;
};

// One direction of an established connection as it moves (relay.h's RelayState carries the
// same): bytes relayed so far, whether `from` has ended and `to` was shut down, whether it
// splices, how many bytes wait in its pipe (the client's direction only) and the bytes read
// but not yet written (in the message itself).
struct MovingDirection {
    std::uint64_t bytes = 0;
    bool eof = false;
    bool shut = false;
    bool splicing = false;
    std::uint32_t in_pipe = 0;
    std::string_view pending; // decoded: points into the Received
};
// worker -> parent (a draining worker hands over one established connection) and, after the
// parent's checks, parent -> worker (a new-generation worker takes it over). Descriptors: the
// client's TCP socket, the backend's Unix socket, then the pipe's read end when up.in_pipe > 0.
struct MovingMsg {
    std::uint32_t id = 0;
    std::int64_t accepted_ns = 0; // the log line's duration counts from here
    std::int64_t routed_ns = 0; // for the hello-duration metric (0: unknown)
    sockaddr_storage peer {}; // the TCP peer (the client, or a proxy-from balancer)
    sockaddr_storage source {}; // the client as logged (peer, or the PROXY header's source)
    std::string_view sni, route, via, alpn, ja4; // the log line's fields
    std::uint8_t moved = 1; // how often it has moved (the log's moved=), this time included
    MovingDirection up, down;
    UniqueFd* fds = nullptr; // decoded: the Received's descriptors, fd_count() of them
    std::size_t fd_count() const { return up.in_pipe > 0 ? 3 : 2; }
};
// The fixed part of a moving message; what is left of max_message holds the strings and the
// pending bytes of both directions: a connection holding more stays where it is.
constexpr std::size_t moving_header = 108;
constexpr std::size_t moving_room = max_message - 1 - moving_header;

using FromParent = std::variant<ConnectionsMsg, DrainMsg, ShedMsg, VerdictMsg, MovingMsg>;
using FromWorker = std::variant<ReadyMsg, LogMsg, ClosedMsg, HelloDoneMsg, SourceMsg, MovingMsg>;

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
Encoded encode(const HelloDoneMsg& m);
Encoded encode(const SourceMsg& m);
Encoded encode(const ShedMsg& m);
Encoded encode(const VerdictMsg& m);
// Fills `out` with up to max_ids ids taken from the front of `ids`; returns how many.
std::size_t take_ids(std::span<const std::uint32_t> ids, IdList* out);
// The records of a connection message for infos.size() descriptors (1..max_handover).
bool encode_connections(std::span<const ConnectionInfo> infos, Encoded* out, std::string* err);

// False (and why) when the strings and pending bytes do not fit in one message or the state
// is not one a relay can be in (see decode).
bool encode_moving(const MovingMsg& m, Encoded* out, std::string* err);

// Decodes what a worker sent / what the parent sent. False (with the reason) for an unknown
// type, a wrong size, a value out of range, or descriptors where none belong or not exactly
// as many as announced. Descriptors of a refused message close with `m`.
bool decode_from_worker(const Received& m, FromWorker* out, std::string* err);
bool decode_from_parent(Received& m, FromParent* out, std::string* err);

// The ids of the connections a connection message announces by its records, even when it is
// unusable: the parent counted them as handed over, so the worker reports them ended.
std::size_t connections_in(const Received& m, IdList* ids = nullptr);

// Sending: each returns 0 or an errno value (EAGAIN: the channel is full right now), since the
// callers branch on which. fds and infos have the same length, 1 to max_handover.
int send_connections(int channel, std::span<const int> fds, std::span<const ConnectionInfo> infos);
int send(int channel, const Encoded& m);
// A moving message with its descriptors (client, backend[, pipe]).
int send_moving(int channel, const Encoded& m, std::span<const int> fds);

} // namespace sniproxy
