// hashed_name.h: the hashed directory names of the hosts directory (the sniproxy-rs scheme),
// used when HOST/tls-socket would not fit in sun_path or when every name is to be hidden.
#pragma once

#include "hosts_layout.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace sniproxy {

// Unpadded URL-safe base64 (RFC 4648 section 5) of `len` bytes.
std::string base64url_unpadded(const unsigned char* data, std::size_t len);

// BLAKE2s-256 of the name bytes, unpadded URL-safe base64: always 43 characters.
// "example.com" -> "ceA51lG1FUJ-gCIICYcmzOsjls2JmL6BBz5LAHROpe0".
std::string hashed_name(std::string_view name);

// Directory name for a route candidate. "_default" and "_nosni" are never hashed; anything else is
// hashed when all_hashed, or when candidate + "/tls-socket" would not fit in max_unix_path; else it
// is the candidate itself. Wildcard candidates ("*.x.y") hash their literal string.
// The path is relative to the hosts directory, which is the workers' chroot.
std::string host_directory(std::string_view candidate, bool all_hashed);

} // namespace sniproxy
