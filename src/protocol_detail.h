// protocol_detail.h: the byte-level helpers protocol.cc and protocol_moving.cc share (only
// they include it): addresses zero-padded to a fixed room, unaligned integers.
#pragma once

#include "protocol.h"

#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace sniproxy::protocol_detail {

// Where a message carries an address: sockaddr_in or sockaddr_in6 zero-padded to this.
constexpr std::size_t address_room = sizeof(sockaddr_in6);

inline std::size_t address_size(const sockaddr_storage& a)
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

inline std::uint32_t u32(const std::uint8_t* p)
{
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// An address in address_room bytes, zero-padded; false for a family we do not carry
// (AF_UNSPEC only where `unspec_ok`) or padding that is not zero.
inline bool decode_address(const std::uint8_t* p, sockaddr_storage* out, bool unspec_ok,
    const char* name, std::string* err)
{
    *out = {};
    std::memcpy(out, p, address_room);
    const std::size_t used = address_size(*out);
    if (used == 0 && !(unspec_ok && out->ss_family == AF_UNSPEC)) {
        *err = std::string(name) + " message with address family " + std::to_string(out->ss_family);
        return false;
    }
    for (std::size_t b = used; b < address_room; b++) {
        if (p[b] != 0) {
            *err = std::string(name) + " message with bytes after the address";
            return false;
        }
    }
    return true;
}

// MovingMsg (protocol_moving.cc), for both decoders.
bool decode_moving(const Received& m, MovingMsg* out, std::string* err);

} // namespace sniproxy::protocol_detail
