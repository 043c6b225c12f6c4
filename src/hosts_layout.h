// hosts_layout.h: the shape of the hosts directory in one place: the entry and file names
// the daemon looks up, the hashed-name shape and the sun_path limit. The route chooser,
// the checker and sniproxyctl all read the layout from here, so they cannot disagree.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sniproxy {

// sun_path is 108 bytes on Linux, one of them the terminating NUL.
constexpr std::size_t max_unix_path = 107;

// The entry for a hello with no SNI or an SNI without an entry of its own.
inline constexpr std::string_view default_route_name = "_default";
// The entry for a hello with no SNI, tried before _default.
inline constexpr std::string_view nosni_route_name = "_nosni";
// A wildcard entry is this prefix and the parent name: exactly one more leftmost label.
inline constexpr std::string_view wildcard_prefix = "*.";

// Files inside an entry.
inline constexpr std::string_view socket_file = "tls-socket";
inline constexpr std::string_view proxy_v1_file = "send-proxy-v1";
inline constexpr std::string_view proxy_v2_file = "send-proxy-v2";
// With send-proxy-v2: the v2 header also carries the hello's JA4 (proxy_v2_ja4_tlv).
inline constexpr std::string_view proxy_v2_ja4_file = "send-proxy-v2-ja4";
// Per-ALPN sockets: HOST/alpn/ENCODED-PROTOCOL/tls-socket (alpn_name.h encodes).
inline constexpr std::string_view alpn_dir = "alpn";

// Hashed names are BLAKE2s-256 (32 bytes) in unpadded base64url: 43 characters.
constexpr std::size_t hashed_name_length = 43;

// directory + "/" + file: a path relative to the hosts directory (the workers' chroot).
std::string entry_path(std::string_view directory, std::string_view file);
// directory + "/tls-socket".
std::string socket_path(std::string_view directory);
// Whether directory + "/tls-socket" fits in sun_path, i.e. the plain name can be used.
bool socket_path_fits(std::string_view directory);

// 43 characters of the base64url alphabet: what a hashed name looks like.
bool looks_hashed(std::string_view name);
// looks_hashed, and a canonical encoding of 32 bytes (the unused low 2 bits of the last
// character are zero): a name hashed_name() can actually produce.
bool is_hashed_shape(std::string_view name);

} // namespace sniproxy
