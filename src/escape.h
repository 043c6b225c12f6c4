// escape.h: the one escaper for untrusted bytes that reach a log line, a terminal or a JSON
// log record. Whatever the input, the output is printable ASCII (valid UTF-8), so a client's
// SNI, a file name or a worker's record can neither end a line nor forge a field.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

namespace sniproxy {

// Which printable ASCII bytes pass unchanged. Every other byte (controls, DEL, bytes >= 0x80)
// is always written as \xNN, two lowercase hex digits: NUL is \x00, 0xff is \xff.
enum class EscapeSet {
    // A value in a `key=value` log line: 0x21-0x7e except `=`, `"` and `\`. A space is \x20,
    // `=` is \x3d, `"` is \x22, `\` is \x5c, so a value is one field that no parser can split.
    log_value,
    // A message for a person (checker findings, sniproxyctl's stderr): printable ASCII and space,
    // except `\` (\x5c), so every \xNN in the output stands for exactly one input byte.
    text,
    // A message echoing what an operator typed, for a terminal: as `text`, but well-formed UTF-8
    // passes too, so "Bücher.example" reads as typed. Not the C1 controls (U+0080-U+009F), nor
    // line/paragraph separators and bidi controls (U+2028-U+202E, U+2066-U+2069, U+200E-U+200F),
    // nor any malformed, overlong or surrogate sequence: those bytes are \xNN each.
    terminal,
    // Text that an escaper has already seen (a worker's record, checked again by the parent):
    // as `text`, but `\` passes so that the worker's escapes are not escaped again.
    escaped_text,
};

constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();

// Escapes `in` as `set` says. Only the first `max` input bytes are used; if any were left
// out, "..." is appended. The empty string stays empty.
std::string escape(std::string_view in, EscapeSet set, std::size_t max = no_limit);

// escape(in, EscapeSet::log_value, max): the form of every value in a per-connection line.
std::string escape_log_value(std::string_view in, std::size_t max = 256);

// Appends `in` as a JSON string (RFC 8259), quotes included. `"` and `\` are \" and \\;
// \b \f \n \r \t have their short forms; every other byte below 0x20, DEL and every byte
// >= 0x80 is \u00XX of the byte. So the output is ASCII whatever comes in, and a reader gets
// the input back exactly by taking each code point of the decoded string as one byte
// (Python: json.loads(s).encode("latin-1")). A UTF-8 "ü" (c3 bc) is "\u00c3\u00bc", not "ü":
// the bytes are untrusted and need not be UTF-8 at all. Only the first `max` input bytes are
// used; if any were left out, "..." ends the string.
void append_json_string(std::string* out, std::string_view in, std::size_t max = 256);

} // namespace sniproxy
