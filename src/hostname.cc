// hostname.cc: SNI canonicalisation, route candidates and hosts-directory name kinds.
#include "hostname.h"

#include <arpa/inet.h>

#include <cstddef>
#include <utility>

namespace sniproxy {

namespace {

    constexpr std::size_t max_name = 253;
    constexpr std::size_t max_label = 63;

    bool is_digit(char c)
    {
        return c >= '0' && c <= '9';
    }
    bool is_lower_hex(char c)
    {
        return is_digit(c) || (c >= 'a' && c <= 'f');
    }
    bool is_ldh(char c)
    {
        return is_digit(c) || (c >= 'a' && c <= 'z') || c == '-';
    }

    // A label a browser or inet_aton would read as a number: decimal (or octal) digits, or "0x"
    // followed by hex digits, possibly none. inet_aton needs every part numeric, so checking
    // the last label catches all it accepts ("127.1", "0x7f.1", "1.0x7f", "0x7f000001").
    bool is_numeric_label(std::string_view label)
    {
        if (label.size() >= 2 && label[0] == '0' && label[1] == 'x') {
            for (char c : label.substr(2))
                if (!is_lower_hex(c))
                    return false;
            return true;
        }
        for (char c : label)
            if (!is_digit(c))
                return false;
        return true;
    }

    // "::1", "[::1]", "[2001:db8::1]" and friends. Only reached for names holding a ':', which
    // can never be valid hostnames anyway; this just gives the log a better reason.
    bool is_ipv6_literal(std::string_view name)
    {
        if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
            name = name.substr(1, name.size() - 2);
        if (name.find(':') == std::string_view::npos || name.size() >= INET6_ADDRSTRLEN)
            return false;
        char buf[INET6_ADDRSTRLEN];
        name.copy(buf, name.size());
        buf[name.size()] = '\0';
        in6_addr addr;
        return inet_pton(AF_INET6, buf, &addr) == 1;
    }

    NameError check_label(std::string_view label)
    {
        if (label.empty())
            return NameError::empty_label;
        if (label.size() > max_label)
            return NameError::label_too_long;
        for (char c : label)
            if (!is_ldh(c))
                return NameError::bad_char;
        if (label.front() == '-' || label.back() == '-')
            return NameError::bad_hyphen;
        return NameError::ok;
    }

    NameError check_canonical(std::string_view name)
    {
        if (name.empty())
            return NameError::empty;
        if (name.size() > max_name)
            return NameError::too_long;
        if (is_ipv6_literal(name))
            return NameError::ip_literal;
        std::string_view last;
        for (std::size_t start = 0;;) {
            std::size_t dot = name.find('.', start);
            std::string_view label
                = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
            if (NameError e = check_label(label); e != NameError::ok)
                return e;
            if (dot == std::string_view::npos) {
                last = label;
                break;
            }
            start = dot + 1;
        }
        return is_numeric_label(last) ? NameError::ip_literal : NameError::ok;
    }

    bool is_canonical_hostname(std::string_view name)
    {
        std::string out;
        return canonicalize_hostname(name, &out) == NameError::ok && out == name;
    }

} // namespace

const char* name_error_string(NameError e)
{
    switch (e) {
    case NameError::ok:
        return "ok";
    case NameError::empty:
        return "empty";
    case NameError::too_long:
        return "too-long";
    case NameError::empty_label:
        return "empty-label";
    case NameError::label_too_long:
        return "label-too-long";
    case NameError::bad_char:
        return "bad-char";
    case NameError::bad_hyphen:
        return "bad-hyphen";
    case NameError::ip_literal:
        return "ip-literal";
    }
    return "unknown";
}

NameError canonicalize_hostname(std::string_view raw, std::string* out)
{
    out->clear();
    if (!raw.empty() && raw.back() == '.')
        raw.remove_suffix(1);
    // Reject before copying: a hostile SNI may be up to 64 KiB.
    if (raw.size() > max_name)
        return NameError::too_long;
    std::string name(raw);
    for (char& c : name)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    NameError e = check_canonical(name);
    if (e == NameError::ok)
        *out = std::move(name);
    return e;
}

std::vector<std::string> route_candidates(const std::string* canonical_sni)
{
    std::vector<std::string> out;
    if (canonical_sni) {
        out.push_back(*canonical_sni);
        std::size_t dot = canonical_sni->find('.');
        if (dot != std::string::npos)
            out.push_back(std::string(wildcard_prefix) + canonical_sni->substr(dot + 1));
    } else {
        out.emplace_back(nosni_route_name);
    }
    out.emplace_back(default_route_name);
    return out;
}

DirKind classify_dir_name(std::string_view name)
{
    if (name == default_route_name || name == nosni_route_name)
        return DirKind::default_route;
    if (is_canonical_hostname(name))
        return DirKind::hostname;
    if (name.starts_with(wildcard_prefix)
        && is_canonical_hostname(name.substr(wildcard_prefix.size())))
        return DirKind::wildcard;
    return is_hashed_shape(name) ? DirKind::hashed : DirKind::invalid;
}

} // namespace sniproxy
