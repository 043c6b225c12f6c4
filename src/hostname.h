// hostname.h: canonical form of an SNI, the route candidates it maps to, and the kinds of
// names a hosts directory may hold. Pure logic, no I/O: the parser and the checker share it.
#pragma once

#include "hosts_layout.h"

#include <string>
#include <string_view>
#include <vector>

namespace sniproxy {

enum class NameError {
    ok,
    empty, // nothing left after dropping one trailing dot
    too_long, // over 253 bytes
    empty_label, // ".." or a leading dot (or two trailing dots)
    label_too_long, // a label over 63 bytes
    bad_char, // anything outside [a-z0-9-] after lowercasing, including NUL and non-ASCII
    bad_hyphen, // a label that starts or ends with '-'
    ip_literal, // an IPv4 literal in any form inet_aton or a browser accepts, or IPv6
};

// Short kebab-case reason for logs, e.g. "bad-char".
const char* name_error_string(NameError);

// Canonicalise an SNI as received (raw bytes, may hold anything): ASCII-lowercase, drop ONE
// trailing dot, then validate as an RFC 1123 LDH hostname (A-labels only). IP literals are
// rejected: a last label that is all digits or "0x" + hex digits (the WHATWG URL rule, a
// superset of what inet_aton accepts), or an IPv6 address with or without brackets.
// On success `*out` holds the canonical name; on any error it is left empty, so a rejected
// name can never be used by mistake. The first error found left to right is reported.
NameError canonicalize_hostname(std::string_view raw, std::string* out);

// Route candidates in lookup order. nullptr means the hello had no SNI.
// Canonical name: {name, "*." + parent (only when name has >= 2 labels), "_default"}.
// No SNI: {"_nosni", "_default"}.
std::vector<std::string> route_candidates(const std::string* canonical_sni);

enum class DirKind { hostname, wildcard, default_route, hashed, invalid };

// What a hosts-directory entry name is (for `sniproxyd -n` and `sniproxyctl check`):
// - hostname: already canonical (lowercase, no trailing dot, valid);
// - wildcard: "*." + a canonical hostname of at least one label ("*.com" is accepted because
//   route_candidates produces it for "example.com");
// - default_route: "_default" or "_nosni";
// - hashed: 43 chars of [A-Za-z0-9_-] that is not a hostname and is a canonical encoding of
//   32 bytes (the unused low 2 bits of the last character are zero), i.e. something
//   hashed_name() can actually produce;
// - invalid: anything else, including uppercase names, which can never match.
DirKind classify_dir_name(std::string_view name);

} // namespace sniproxy
