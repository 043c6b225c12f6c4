// listen_address.h: the -l ADDRESS:PORT syntax and the printable form of socket addresses.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

namespace sniproxy {

struct ListenAddress {
    sockaddr_storage addr {};
    socklen_t len = 0;
};

// Accepts "127.0.0.1:8443", "[::1]:8443" and "*:443" (IPv4 and IPv6 wildcards). Addresses are
// numeric: a listener must not depend on DNS at boot. Appends to `*out`, or returns false
// with a one-line `*err`.
bool parse_listen_address(std::string_view text, std::vector<ListenAddress>* out, std::string* err);

// "192.0.2.1:443", "[2001:db8::1]:443", "unix" or "?" for anything else.
std::string format_address(const sockaddr_storage& addr);

} // namespace sniproxy
