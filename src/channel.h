// channel.h: the transport under the parent<->worker protocol: one SOCK_SEQPACKET record is
// one message, a type byte and a small payload, with descriptors (SCM_RIGHTS) attached when
// the message carries some. It knows nothing of what messages mean: protocol.h encodes and
// decodes them and decides what is valid, and only protocol.cc calls these functions.
#pragma once

#include "fd.h"

#include <cstddef>
#include <cstdint>
#include <memory>
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

// Up to max_receive_batch messages in one system call (recvmmsg), each checked as
// receive_message checks one: messages[i] with results[i] (message or invalid) for i <
// count, then `end` says why there are no more: again (the channel is empty, or it filled
// while we read: the caller's readiness event fires again), eof, error, or message (the
// batch is full and more may wait). Descriptors of a message are owned by it until the
// next receive_messages or release().
constexpr std::size_t max_receive_batch = 64;
class ReceiveBatch {
public:
    ReceiveBatch();
    ~ReceiveBatch();
    ReceiveBatch(const ReceiveBatch&) = delete;
    ReceiveBatch& operator=(const ReceiveBatch&) = delete;
    void release(); // closes every descriptor the batch still holds

    Received messages[max_receive_batch];
    Recv results[max_receive_batch] {};
    std::size_t count = 0;
    Recv end = Recv::again;

private:
    friend void receive_messages(int channel, ReceiveBatch& batch);
    struct Landings; // the kernel's headers, kept out of this header
    std::unique_ptr<Landings> landings_;
};
void receive_messages(int channel, ReceiveBatch& batch);

// Monotonic clock in nanoseconds, shared by both sides for the hello deadline.
std::int64_t monotonic_ns();

} // namespace sniproxy
