// channel.h: the parent<->worker protocol over a SOCK_SEQPACKET socketpair. One message is
// one record: a type byte and a small payload, plus the client's descriptor (SCM_RIGHTS)
// for connection messages. Both sides treat anything unexpected as an error.
#pragma once

#include "fd.h"

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace sniproxy {

enum class Msg : std::uint8_t {
    connection = 'C', // parent -> worker: 1..max_handover client fds, each with its info
    drain = 'D', // parent -> worker: take no more, finish, exit
    ready = 'R', // worker -> parent: sandboxed and serving
    log = 'L', // worker -> parent: level byte, then text
    closed = 'X', // worker -> parent: u32 count of connections that ended
};

constexpr std::size_t max_message = 1024;

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

// Each returns 0 or an errno value (EAGAIN: the channel is full right now).
// fds and infos have the same length, 1 to max_handover.
int send_connections(int channel, std::span<const int> fds, std::span<const ConnectionInfo> infos);
int send_connection(int channel, int client_fd, const ConnectionInfo& info);
int send_message(int channel, Msg type, std::span<const std::uint8_t> payload = {});
// Several messages without descriptors in one system call (sendmmsg), in order. Returns how
// many the channel took (fewer than asked when it filled up; 0 and errno EAGAIN when it was
// full), or -1 with errno set on another error.
struct Outgoing {
    Msg type {};
    std::span<const std::uint8_t> payload;
};
constexpr std::size_t max_batch = 64;
int send_messages(int channel, std::span<const Outgoing> messages);
// Any message with descriptors attached (up to max_handover). Only connection messages carry
// them; other combinations exist so that tests can play a misbehaving peer.
int send_message_with_fds(
    int channel, Msg type, std::span<const std::uint8_t> payload, std::span<const int> fds);

enum class Recv { message, again, eof, error, invalid };

struct Received {
    Msg type {};
    std::uint8_t payload[max_message];
    std::size_t payload_len = 0;
    UniqueFd fds[max_handover]; // connection messages only: nfds of them
    std::size_t nfds = 0;
};

// How many connections a connection message announces (by its records), even when it was
// invalid: the sender counted them as handed over, so the receiver must report them ended.
std::size_t connections_in(const Received& m);
// The ConnectionInfo of each descriptor of a connection message (out has room for nfds);
// false if the payload does not describe exactly nfds connections.
bool parse_connections(const Received& m, std::span<ConnectionInfo> out);

// Receives one message without blocking. `invalid` covers truncation, a descriptor on a
// message that should not carry one (closed at once) or a missing one.
Recv receive_message(int channel, Received& out);

// Monotonic clock in nanoseconds, shared by both sides for the hello deadline.
std::int64_t monotonic_ns();

} // namespace sniproxy
