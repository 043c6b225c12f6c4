// escape.cc: byte-by-byte escaping for log lines, terminals and JSON.
#include "escape.h"

namespace sniproxy {

namespace {

    constexpr char hex[] = "0123456789abcdef";

    bool passes(unsigned char c, EscapeSet set)
    {
        if (c < 0x20 || c >= 0x7f)
            return false;
        switch (set) {
        case EscapeSet::log_value:
            return c != ' ' && c != '=' && c != '"' && c != '\\';
        case EscapeSet::text:
            return c != '\\';
        case EscapeSet::escaped_text:
            return true;
        }
        return false;
    }

    // The JSON short escapes (RFC 8259 section 7), or 0.
    char json_short(unsigned char c)
    {
        switch (c) {
        case '"':
            return '"';
        case '\\':
            return '\\';
        case '\b':
            return 'b';
        case '\f':
            return 'f';
        case '\n':
            return 'n';
        case '\r':
            return 'r';
        case '\t':
            return 't';
        default:
            return 0;
        }
    }

} // namespace

std::string escape(std::string_view in, EscapeSet set, std::size_t max)
{
    const bool cut = in.size() > max;
    if (cut)
        in = in.substr(0, max);
    std::string out;
    out.reserve(in.size() + (cut ? 3 : 0));
    for (const char ch : in) {
        const auto c = static_cast<unsigned char>(ch);
        if (passes(c, set)) {
            out += ch;
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (cut)
        out += "...";
    return out;
}

std::string escape_log_value(std::string_view in, std::size_t max)
{
    return escape(in, EscapeSet::log_value, max);
}

void append_json_string(std::string* out, std::string_view in, std::size_t max)
{
    const bool cut = in.size() > max;
    if (cut)
        in = in.substr(0, max);
    *out += '"';
    for (const char ch : in) {
        const auto c = static_cast<unsigned char>(ch);
        if (const char s = json_short(c)) {
            *out += '\\';
            *out += s;
        } else if (c >= 0x20 && c < 0x7f) {
            *out += ch;
        } else {
            *out += "\\u00";
            *out += hex[c >> 4];
            *out += hex[c & 15];
        }
    }
    if (cut)
        *out += "...";
    *out += '"';
}

} // namespace sniproxy
