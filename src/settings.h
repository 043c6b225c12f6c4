// settings.h: the settings of sniproxyd(8) ("-o name=value" and the lines of a -f file), their
// rules of precedence and their printed form. Pure: the file arrives as text.
#pragma once

#include "cidr.h"
#include "listen_address.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sniproxy {

struct SourceRate {
    unsigned per_second = 0; // 0: no limit
    unsigned burst = 0; // the bucket's size; the parser sets it to per_second when not given
    bool operator==(const SourceRate&) const = default;
};

struct MetricsAddress {
    std::string text; // as written: "127.0.0.1:9100", "[::1]:9100", "*:9100", "unix:/run/m.sock"
    std::vector<ListenAddress> inet; // ADDR:PORT (two for *:PORT)
    std::string unix_path; // unix:PATH, absolute and short enough for sun_path
};

enum class LogFormat { text, json };

struct Settings {
    CidrList allow; // empty: everyone
    CidrList deny;
    unsigned source_max = 0; // 0: no limit
    SourceRate source_rate;
    unsigned source_hellos = 0; // 0: no fixed limit (shedding under pressure still applies)
    unsigned source_prefix4 = 32;
    unsigned source_prefix6 = 64;
    unsigned idle_timeout = 0; // seconds; 0: never
    CidrList proxy_from;
    std::optional<MetricsAddress> metrics;
    LogFormat log_format = LogFormat::text;
    // On rollover, established connections move to the new generation (off: they drain).
    bool move_connections = true;
};

// The largest value of source-max, source-hellos and either part of source-rate.
inline constexpr unsigned max_setting_count = 1000000;

// Parses `file_text` (the contents of the -f file named `file_name`, empty when there is none)
// and then the -o items in order. Unknown names, bad values and a scalar given twice in one
// source are errors naming the setting, and for the file its line:
//   "settings file /etc/s.conf line 3: source-max: not a number: '-1'"
//   "-o allow: not an IPv4 or IPv6 address: 'x'"
// A list setting is given once per item; a list named by -o replaces the file's list; a scalar
// named by -o replaces the file's value. On error *out is untouched.
bool parse_settings(std::string_view file_name, std::string_view file_text,
    const std::vector<std::string>& overrides, Settings* out, std::string* err);

// Every setting as "name=value" items, lists one item per entry, in the table's order; an
// empty list or metrics off gives no item. Parsed back as -o items they give the same Settings.
std::vector<std::string> settings_items(const Settings& settings);

// For -n -v: the items one a line, with a comment line for each empty list and for metrics
// off, so the output is itself a valid settings file.
std::string render_settings(const Settings& settings);

} // namespace sniproxy
