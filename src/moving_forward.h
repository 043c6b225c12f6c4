// moving_forward.h: a received moving message as it goes on, byte for byte and with the
// descriptors it came with (the supervisor's forwarding, rollover and upgrade alike).
#pragma once

#include "protocol.h"

#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>

namespace sniproxy {

inline Encoded as_sent(const Received& m)
{
    return { Msg::moving, std::string(reinterpret_cast<const char*>(m.payload), m.payload_len) };
}

struct MovingFds {
    int fds[3] {};
    std::size_t n = 0;
    operator std::span<const int>() const { return { fds, n }; }
};

inline MovingFds fds_of(const Received& m)
{
    MovingFds f;
    for (; f.n < m.nfds && f.n < 3; f.n++)
        f.fds[f.n] = m.fds[f.n].get();
    return f;
}

// A moving message that did not fit only because recvmsg cut its descriptors (MSG_CTRUNC:
// the receiver is out of them, so fewer than the three a moving message may carry arrived):
// its connection id (the first field), to count it lost. More than fit is a lie, not a cut.
inline std::optional<std::uint32_t> cut_moving_id(const Received& m)
{
    if (m.type != Msg::moving || !m.fds_truncated || m.nfds >= 3 || m.payload_len < 4)
        return std::nullopt;
    std::uint32_t id;
    std::memcpy(&id, m.payload, sizeof id);
    return id;
}

} // namespace sniproxy
