// proxy_header.cc: PROXY protocol v1 and v2 headers (HAProxy's proxy-protocol.txt).
#include "config.h"

#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <optional>

namespace sniproxy {

namespace {

    // One side of the connection after normalisation: an IPv4 or IPv6 address in network
    // byte order (only the first 4 bytes used for IPv4) and a port in host byte order.
    struct Endpoint {
        int family = AF_UNSPEC;
        std::array<std::uint8_t, 16> addr {};
        std::uint16_t port = 0;
    };

    // Dual-stack listeners report IPv4 clients as ::ffff:a.b.c.d. Backends expect to see the
    // plain IPv4 address, as they would had we listened on an IPv4 socket, so unwrap it.
    std::optional<Endpoint> normalise(const sockaddr_storage& ss)
    {
        Endpoint ep;
        if (ss.ss_family == AF_INET) {
            sockaddr_in sin;
            std::memcpy(&sin, &ss, sizeof sin); // memcpy, not a cast: no aliasing questions
            ep.family = AF_INET;
            std::memcpy(ep.addr.data(), &sin.sin_addr, 4);
            ep.port = ntohs(sin.sin_port);
            return ep;
        }
        if (ss.ss_family == AF_INET6) {
            sockaddr_in6 sin6;
            std::memcpy(&sin6, &ss, sizeof sin6);
            ep.port = ntohs(sin6.sin6_port);
            if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
                ep.family = AF_INET;
                std::memcpy(ep.addr.data(), sin6.sin6_addr.s6_addr + 12, 4);
            } else {
                ep.family = AF_INET6;
                std::memcpy(ep.addr.data(), sin6.sin6_addr.s6_addr, 16);
            }
            return ep;
        }
        return std::nullopt; // AF_UNIX and anything else has no TCP address to report
    }

    // Both endpoints, or nothing when the header must say UNKNOWN / AF_UNSPEC.
    std::optional<std::pair<Endpoint, Endpoint>> tcp_pair(
        const sockaddr_storage& client, const sockaddr_storage& local)
    {
        auto src = normalise(client);
        auto dst = normalise(local);
        if (!src || !dst || src->family != dst->family)
            return std::nullopt;
        return std::pair { *src, *dst };
    }

    std::string to_text(const Endpoint& ep)
    {
        char buf[INET6_ADDRSTRLEN];
        if (!inet_ntop(ep.family, ep.addr.data(), buf, sizeof buf))
            return {}; // cannot happen for AF_INET/AF_INET6 with a large enough buffer
        return buf;
    }

    void put16(std::vector<std::uint8_t>& out, std::size_t value)
    {
        out.push_back(static_cast<std::uint8_t>((value >> 8) & 0xff));
        out.push_back(static_cast<std::uint8_t>(value & 0xff));
    }

    constexpr std::uint8_t v2_version_proxy = 0x21; // version 2, command PROXY
    constexpr std::uint8_t v2_unspec = 0x00;
    constexpr std::uint8_t v2_tcp4 = 0x11;
    constexpr std::uint8_t v2_tcp6 = 0x21;
    constexpr std::uint8_t pp2_type_alpn = 0x01;
    constexpr std::uint8_t pp2_type_authority = 0x02;
    constexpr std::size_t tlv_overhead = 3; // type, 2-byte length

} // namespace

std::string proxy_v1_header(const sockaddr_storage& client, const sockaddr_storage& local)
{
    auto pair = tcp_pair(client, local);
    if (!pair)
        return "PROXY UNKNOWN\r\n";
    const auto& [src, dst] = *pair;
    std::string header = src.family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ";
    header += to_text(src) + ' ' + to_text(dst) + ' ';
    header += std::to_string(src.port) + ' ' + std::to_string(dst.port) + "\r\n";
    return header;
}

std::vector<std::uint8_t> proxy_v2_header(const sockaddr_storage& client,
    const sockaddr_storage& local, std::string_view authority, std::string_view alpn,
    std::string_view ja4)
{
    std::vector<std::uint8_t> out(proxy_v2_signature.begin(), proxy_v2_signature.end());
    out.push_back(v2_version_proxy);

    auto pair = tcp_pair(client, local);
    std::size_t addr_len = 0;
    if (!pair)
        out.push_back(v2_unspec);
    else if (pair->first.family == AF_INET) {
        out.push_back(v2_tcp4);
        addr_len = 4;
    } else {
        out.push_back(v2_tcp6);
        addr_len = 16;
    }
    put16(out, 0); // the length of the rest, patched once it is known

    if (pair) {
        const auto& [src, dst] = *pair;
        out.insert(out.end(), src.addr.begin(), src.addr.begin() + addr_len);
        out.insert(out.end(), dst.addr.begin(), dst.addr.begin() + addr_len);
        put16(out, src.port);
        put16(out, dst.port);
    }

    // The length field is 16 bits. Callers pass a hostname (<= 253 bytes) and an ALPN id
    // (<= 255 bytes), so this never triggers in practice; it only guarantees that we never
    // emit a header whose length field disagrees with its contents.
    auto add_tlv = [&out](std::uint8_t type, std::string_view value) {
        if (value.empty()
            || out.size() - proxy_v2_fixed_size + tlv_overhead + value.size() > 0xffff)
            return;
        out.push_back(type);
        put16(out, value.size());
        out.insert(out.end(), value.begin(), value.end());
    };
    // Ascending type order, as HAProxy itself sends them.
    add_tlv(pp2_type_alpn, alpn);
    add_tlv(pp2_type_authority, authority);
    add_tlv(proxy_v2_ja4_tlv, ja4);

    std::size_t rest = out.size() - proxy_v2_fixed_size;
    out[14] = static_cast<std::uint8_t>(rest >> 8);
    out[15] = static_cast<std::uint8_t>(rest & 0xff);
    return out;
}

} // namespace sniproxy
