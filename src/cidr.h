// cidr.h: IP addresses as sources, CIDR blocks and lists of them (allow, deny, proxy-from,
// HOST/allow). Pure: parsing and matching, no I/O.
#pragma once

#include <sys/socket.h>

#include <array>
#include <compare>
#include <string>
#include <string_view>
#include <vector>

namespace sniproxy {

// A peer's IP address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is stored as the IPv4
// address it carries, so IPv4 rules and limits see one client however it arrived.
struct IpAddress {
    unsigned char family = 0; // AF_INET, AF_INET6, or 0 for a peer that is not IP (AF_UNIX)
    std::array<unsigned char, 16> bytes {}; // IPv4 in the first four, network order
    auto operator<=>(const IpAddress&) const = default;
};

IpAddress ip_of(const sockaddr_storage& addr);
// "192.0.2.1", "2001:db8::1" or "-" for a peer that is not IP.
std::string format_ip(const IpAddress& ip);
// The address with every bit after the first `prefix` cleared (prefix beyond the family's
// width is the whole address).
IpAddress mask_ip(const IpAddress& ip, unsigned prefix);

struct Cidr {
    IpAddress network;
    unsigned prefix = 0;
    auto operator<=>(const Cidr&) const = default;
};

// "10.0.0.0/8", "2001:db8::/32"; a bare address is /32 or /128. Host bits set after the
// prefix ("10.1.2.3/8") are an error, not silently masked: such a rule is usually a typo,
// and in an allow list masking it would let in far more than the operator wrote.
// "::ffff:a.b.c.d/N" with N >= 96 becomes the IPv4 rule a.b.c.d/(N-96).
bool parse_cidr(std::string_view text, Cidr* out, std::string* err);
std::string format_cidr(const Cidr& cidr);
bool cidr_contains(const Cidr& cidr, const IpAddress& ip);

class CidrList {
public:
    void add(const Cidr& cidr) { items_.push_back(cidr); }
    bool empty() const { return items_.empty(); }
    const std::vector<Cidr>& items() const { return items_; }
    // A peer that is not IP is in no list.
    bool contains(const IpAddress& ip) const;
    bool contains(const sockaddr_storage& addr) const { return contains(ip_of(addr)); }
    bool operator==(const CidrList&) const = default;

private:
    std::vector<Cidr> items_;
};

// A HOST/allow file: one CIDR a line; '#' starts a comment, also after a CIDR; blank lines
// and surrounding spaces are ignored. Errors name the line: "line 3: not an IP address: x".
bool parse_allow_file(std::string_view text, CidrList* out, std::string* err);

} // namespace sniproxy
