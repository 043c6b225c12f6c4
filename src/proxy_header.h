// proxy_header.h: build the PROXY protocol header (v1 text or v2 binary) that tells a backend
// who the real client is, since the backend only sees our Unix socket. Pure logic, no I/O.
// Specification: HAProxy's proxy-protocol.txt.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sniproxy {

// The 12 bytes that open every v2 header (and tell it apart from v1's "PROXY ").
inline constexpr std::array<std::uint8_t, 12> proxy_v2_signature { 0x0D, 0x0A, 0x0D, 0x0A, 0x00,
    0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
inline constexpr std::size_t proxy_v2_fixed_size = 16; // signature, ver/cmd, fam/proto, length

// client = the TCP peer address (getpeername), local = our accepting address (getsockname).
// IPv4-mapped IPv6 addresses are reported as IPv4. Anything that is not a pair of
// same-family TCP addresses becomes "PROXY UNKNOWN\r\n".
std::string proxy_v1_header(const sockaddr_storage& client, const sockaddr_storage& local);

// Our TLV (custom range 0xE0-0xEF; GCP uses 0xE0, AWS 0xEA, Azure 0xEE): the hello's JA4
// fingerprint as ASCII, sent when HOST/send-proxy-v2-ja4 exists.
inline constexpr std::uint8_t proxy_v2_ja4_tlv = 0xE4;

// Same addresses as v1, plus TLVs: PP2_TYPE_AUTHORITY with `authority` (the SNI host name),
// PP2_TYPE_ALPN with `alpn` (the client's first offered protocol) and proxy_v2_ja4_tlv with
// `ja4`, each only when non-empty. Unsupported or mixed families give AF_UNSPEC with no
// address block.
std::vector<std::uint8_t> proxy_v2_header(const sockaddr_storage& client,
    const sockaddr_storage& local, std::string_view authority, std::string_view alpn,
    std::string_view ja4 = {});

} // namespace sniproxy
