// cidr.cc: CIDR parsing and matching for access lists and source keys (no I/O).
#include "cidr.h"

#include "text_lines.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace sniproxy {

namespace {
    unsigned width(unsigned char family)
    {
        return family == AF_INET ? 32 : 128;
    }

    bool is_v4_mapped(const unsigned char* b)
    {
        static const unsigned char prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        return std::memcmp(b, prefix, sizeof prefix) == 0;
    }

    IpAddress v4_from(const unsigned char* four)
    {
        IpAddress ip;
        ip.family = AF_INET;
        std::memcpy(ip.bytes.data(), four, 4);
        return ip;
    }
} // namespace

IpAddress ip_of(const sockaddr_storage& addr)
{
    if (addr.ss_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(&addr);
        return v4_from(reinterpret_cast<const unsigned char*>(&sin->sin_addr));
    }
    if (addr.ss_family == AF_INET6) {
        const auto* b = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr.s6_addr;
        if (is_v4_mapped(b))
            return v4_from(b + 12);
        IpAddress ip;
        ip.family = AF_INET6;
        std::memcpy(ip.bytes.data(), b, 16);
        return ip;
    }
    return {};
}

std::string format_ip(const IpAddress& ip)
{
    char buf[INET6_ADDRSTRLEN];
    if (ip.family != AF_INET && ip.family != AF_INET6)
        return "-";
    inet_ntop(ip.family, ip.bytes.data(), buf, sizeof buf);
    return buf;
}

IpAddress mask_ip(const IpAddress& ip, unsigned prefix)
{
    IpAddress out = ip;
    const unsigned bits = width(ip.family);
    for (unsigned i = 0; i < bits / 8; i++) {
        const unsigned keep = prefix > i * 8 ? prefix - i * 8 : 0;
        if (keep < 8)
            out.bytes[i] &= static_cast<unsigned char>(0xff00u >> keep);
    }
    return out;
}

bool parse_cidr(std::string_view text, Cidr* out, std::string* err)
{
    const auto slash = text.find('/');
    const std::string address(text.substr(0, slash));
    const std::string quoted = "'" + std::string(text) + "'";
    unsigned char buf[16];
    Cidr c;
    if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
        c.network = v4_from(buf);
    } else if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
        c.network.family = AF_INET6;
        std::memcpy(c.network.bytes.data(), buf, 16);
    } else {
        *err = "not an IPv4 or IPv6 address: " + quoted;
        return false;
    }
    const unsigned bits = width(c.network.family);
    c.prefix = bits;
    if (slash != std::string_view::npos) {
        const std::string_view p = text.substr(slash + 1);
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), c.prefix);
        if (p.empty() || ec != std::errc() || end != p.data() + p.size() || c.prefix > bits) {
            *err
                = quoted + ": the prefix length must be a number from 0 to " + std::to_string(bits);
            return false;
        }
    }
    if (mask_ip(c.network, c.prefix) != c.network) {
        *err = quoted + ": bits are set after the prefix (did you mean "
            + format_cidr({ mask_ip(c.network, c.prefix), c.prefix }) + "?)";
        return false;
    }
    if (c.network.family == AF_INET6 && c.prefix >= 96 && is_v4_mapped(c.network.bytes.data()))
        c = { v4_from(c.network.bytes.data() + 12), c.prefix - 96 };
    *out = c;
    return true;
}

std::string format_cidr(const Cidr& cidr)
{
    return format_ip(cidr.network) + "/" + std::to_string(cidr.prefix);
}

bool cidr_contains(const Cidr& cidr, const IpAddress& ip)
{
    return ip.family == cidr.network.family && mask_ip(ip, cidr.prefix) == cidr.network;
}

bool CidrList::contains(const IpAddress& ip) const
{
    for (const Cidr& c : items_) {
        if (cidr_contains(c, ip))
            return true;
    }
    return false;
}

bool parse_allow_file(std::string_view text, CidrList* out, std::string* err)
{
    CidrList list;
    const bool ok = for_each_content_line(text, [&](std::size_t number, std::string_view line) {
        Cidr c;
        std::string e;
        if (!parse_cidr(line, &c, &e)) {
            *err = "line " + std::to_string(number) + ": " + e;
            return false;
        }
        list.add(c);
        return true;
    });
    if (ok)
        *out = std::move(list);
    return ok;
}

} // namespace sniproxy
