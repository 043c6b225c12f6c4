// access_log.h: the per-connection log record as data, and its two forms: the text line
// (`key=value` fields, values escaped so that no client input can forge a field) and the
// JSON line (`log-format=json`, the same fields as one object). Pure: no I/O.
#pragma once

#include <cstdint>
#include <string>

namespace sniproxy {

// One connection, as logged when it ends. Optional fields are printed only when set.
struct AccessRecord {
    std::string client; // the source address, "198.51.100.7:4242" or "[2001:db8::1]:4242"
    std::string sni = "-"; // canonical SNI, the raw bytes of an invalid one, or "-"
    std::string route = "-"; // the hosts-directory entry used, or "-"
    std::string result; // "ok", "no-route", "bad-hello", "timeout", "backend-refused", ...
    // Details, each optional (empty or 0: not printed).
    std::string reason; // why a hello or SNI was refused: "bad-char", "truncated-body", ...
    std::string error; // strerror() text of a failed socket call
    int alert = 0; // the fatal alert sent (none is ever 0, which is close_notify)
    std::uint64_t up = 0; // bytes client to backend, PROXY header not counted
    std::uint64_t down = 0; // bytes backend to client
    std::int64_t ms = 0; // from accept to close
    // Added after the fields above (DESIGN.md "Log fields added"), each optional.
    std::string via; // the balancer, when the source came from its PROXY header
    std::string alpn; // the protocol that chose an alpn/ entry
    std::string ja4; // the hello's JA4 fingerprint
    unsigned moved = 0; // how often the connection moved to a newer generation
};

// The longest a value may be: an SNI can be 64 KiB, a log line should not.
constexpr std::size_t access_value_max = 256;

// "client=... sni=... route=... result=... [reason=...] [errno=...] [alert=N] up=N down=N
// ms=N [via=...] [alpn=...] [ja4=...] [moved=N]": the order and names existing parsers
// expect. Every string value is escape_log_value()d, so it holds no space, `=`, `"`, `\` or
// control byte; an empty one is written as "-".
std::string format_access_text(const AccessRecord& r);

// The parent cuts a worker's record after this many bytes (supervisor.cc).
constexpr std::size_t access_line_max = 900;

// format_access_json when `json`, else format_access_text, at most `max` bytes long: when
// hostile values (an SNI of 256 bytes that each escape to 4 or 6) would make the line longer,
// every string value is cut shorter (ending in "...") until it fits, so that the fields after
// them, result= among them, are never lost and a JSON line stays one whole object.
std::string format_access_line(const AccessRecord& r, bool json, std::size_t max = access_line_max);

// The same fields as one JSON object on one line (keys as in the text form, numbers as
// numbers, strings by append_json_string), e.g.
// {"client":"192.0.2.1:5000","sni":"example.com",...,"up":517,"down":1200,"ms":12}.
std::string format_access_json(const AccessRecord& r);

} // namespace sniproxy
