// host_allow.h: a hosts-directory entry's `allow` file (sniproxyd.hosts(5)): who may reach
// that entry. Read per connection by the worker (so editing it needs no signal) and checked
// by `sniproxyctl check`. The reading is bounded; the parsing is parse_allow_file (cidr.h).
#pragma once

#include "cidr.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sniproxy {

inline constexpr std::string_view allow_file = "allow";
// An allow file is a short list; anything larger is refused rather than read.
inline constexpr std::size_t max_allow_file_bytes = 64 * 1024;

// The hosts-directory entry a route's socket path lies in ("example.com/alpn/h2/tls-socket"
// -> "example.com"): its allow file applies to every socket of the entry.
std::string entry_of(std::string_view socket_path);

// Reads `entry`/allow relative to `dir_fd` (AT_FDCWD: the worker's hosts directory). *out is
// empty when there is no such file (everyone may connect); an allow file with no CIDR lets
// nobody in. False, with the reason, for a file that cannot be read, is too large, or does
// not parse (the line is named): the caller refuses the connection.
bool read_host_allow(
    int dir_fd, const std::string& entry, std::optional<CidrList>* out, std::string* err);

} // namespace sniproxy
