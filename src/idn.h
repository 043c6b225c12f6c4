// idn.h: turning what an operator types (UTF-8, maybe internationalized, any case) into the
// A-label the hosts directory is keyed by. Used by `sniproxyctl hostname`.
#pragma once

#include <string>
#include <string_view>

namespace sniproxy {

// UTS #46 processing with libidn2 (NFC, non-transitional, so "ß" stays "ß" and encodes as
// xn--zca), then the same validation the daemon applies to an SNI (canonicalize_hostname): the
// result is lowercase, has no trailing dot and is a valid LDH hostname that is not an IP
// literal. A leading "*." is kept, for wildcard entries: "*.bücher.example" ->
// "*.xn--bcher-kva.example". One trailing dot is dropped, as for an SNI.
// On failure `*out` is empty and `*err` says why: libidn2's idn2_strerror() text, or the short
// reason of name_error_string() ("bad-char", "ip-literal", ...).
bool to_a_label(std::string_view user_input, std::string* out, std::string* err);

} // namespace sniproxy
