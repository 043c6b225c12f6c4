// channel.h: the transport under the parent<->worker protocol: one SOCK_SEQPACKET record is
// one message, a type byte and a small payload, with descriptors (SCM_RIGHTS) attached when
// the message carries some. It knows nothing of what messages mean: protocol.h encodes and
// decodes them and decides what is valid, and only protocol.cc calls these functions.
#pragma once

#include "fd.h"

#include <cstddef>
#include <cstdint>
#include <span>

namespace sniproxy {

enum class Msg : std::uint8_t; // the message types, defined in protocol.h

constexpr std::size_t max_message = 1024;
constexpr std::size_t max_fds_per_message = 16;

// Returns 0 or an errno value (EAGAIN: the channel is full right now; EINVAL: too many fds;
// EMSGSIZE: payload too large).
int send_message(
    int channel, Msg type, std::span<const std::uint8_t> payload, std::span<const int> fds = {});

// Several messages without descriptors in one system call (sendmmsg), in order. Returns how
// many the channel took (fewer than asked when it filled up; 0 and errno EAGAIN when it was
// full), or -1 with errno set on another error.
struct Outgoing {
    Msg type {};
    std::span<const std::uint8_t> payload;
};
constexpr std::size_t max_batch = 64;
int send_messages(int channel, std::span<const Outgoing> messages);

// `invalid`: the record did not fit (payload or descriptors cut; then fds_truncated tells
// whether descriptors were lost, as when the receiver is out of them).
enum class Recv { message, again, eof, error, invalid };

struct Received {
    Msg type {};
    std::uint8_t payload[max_message];
    std::size_t payload_len = 0;
    UniqueFd fds[max_fds_per_message];
    std::size_t nfds = 0;
    bool fds_truncated = false;
};

// Receives one message without blocking. Every descriptor that arrived is owned by `out`
// (closed with it), whatever the result. The type and payload are kept even for an invalid
// message, so that the receiver can tell what it stood for.
Recv receive_message(int channel, Received& out);

// Monotonic clock in nanoseconds, shared by both sides for the hello deadline.
std::int64_t monotonic_ns();

} // namespace sniproxy
