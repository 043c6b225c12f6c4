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
        case EscapeSet::terminal:
            return c != '\\';
        case EscapeSet::escaped_text:
            return true;
        }
        return false;
    }

    // The length of the well-formed UTF-8 sequence at the start of `in` whose code point a
    // terminal shows as a character (EscapeSet::terminal), or 0.
    std::size_t printable_utf8(std::string_view in)
    {
        const auto b = [&](std::size_t i) { return static_cast<unsigned char>(in[i]); };
        const unsigned char lead = b(0);
        std::size_t len;
        char32_t cp;
        if (lead >= 0xc2 && lead <= 0xdf) {
            len = 2;
            cp = lead & 0x1f;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            len = 3;
            cp = lead & 0x0f;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            len = 4;
            cp = lead & 0x07;
        } else {
            return 0;
        }
        if (in.size() < len)
            return 0;
        for (std::size_t i = 1; i < len; i++) {
            if ((b(i) & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (b(i) & 0x3f);
        }
        const char32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0; // overlong, beyond Unicode, or a surrogate
        if (cp < 0xa0 || (cp >= 0x200e && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e)
            || (cp >= 0x2066 && cp <= 0x2069))
            return 0; // C1 controls, separators, bidi controls
        return len;
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
    for (std::size_t i = 0; i < in.size(); i++) {
        const char ch = in[i];
        const auto c = static_cast<unsigned char>(ch);
        if (passes(c, set)) {
            out += ch;
        } else if (std::size_t n; set == EscapeSet::terminal && c >= 0x80
                   && (n = printable_utf8(in.substr(i))) != 0) {
            out.append(in.substr(i, n));
            i += n - 1;
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
