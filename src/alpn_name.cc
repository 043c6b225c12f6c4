// alpn_name.cc: the percent-encoding of ALPN protocol IDs into directory names, its exact
// inverse for `sniproxyctl check`, and the first-offered-wins choice of an alpn/ socket.
#include "alpn_name.h"

#include "hosts_layout.h"

namespace sniproxy {

namespace {

    constexpr char hex_digits[] = "0123456789abcdef";
    constexpr std::size_t max_alpn_id = 255; // RFC 7301: opaque ProtocolName<1..2^8-1>

    bool plain(unsigned char c)
    {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    }

    int hex_value(char c)
    {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        return -1; // uppercase too: the encoding writes lowercase only
    }

} // namespace

std::string encode_alpn_name(std::string_view protocol)
{
    std::string out;
    out.reserve(protocol.size());
    for (char ch : protocol) {
        const auto c = static_cast<unsigned char>(ch);
        if (plain(c)) {
            out += ch;
        } else {
            out += '%';
            out += hex_digits[c >> 4];
            out += hex_digits[c & 0xf];
        }
    }
    return out;
}

bool decode_alpn_name(std::string_view name, std::string* protocol, std::string* err)
{
    if (name == "." || name == "..") {
        *err = "\"" + std::string(name) + "\" cannot be an ALPN directory";
        return false;
    }
    std::string out;
    for (std::size_t i = 0; i < name.size(); i++) {
        const auto c = static_cast<unsigned char>(name[i]);
        if (plain(c)) {
            out += name[i];
            continue;
        }
        if (c != '%') {
            *err = "not an encoded ALPN protocol: write every byte outside a-z 0-9 . - as %"
                   " and two lowercase hex digits (sniproxyctl alpn PROTOCOL prints the name)";
            return false;
        }
        const bool room = i + 2 < name.size();
        const int hi = room ? hex_value(name[i + 1]) : -1;
        const int lo = room ? hex_value(name[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            *err = "'%' must be followed by two lowercase hex digits";
            return false;
        }
        const auto byte = static_cast<unsigned char>(hi << 4 | lo);
        if (plain(byte)) {
            *err = "'%" + std::string(name.substr(i + 1, 2))
                + "' encodes a byte written plainly:"
                  " this directory can never be chosen";
            return false;
        }
        out += static_cast<char>(byte);
        i += 2;
    }
    if (out.empty() || out.size() > max_alpn_id) {
        *err = "an ALPN protocol is 1 to 255 bytes long";
        return false;
    }
    *protocol = std::move(out);
    return true;
}

std::optional<AlpnChoice> choose_alpn_socket(std::string_view host_dir,
    const std::vector<std::string>& offered, const std::function<bool(const std::string&)>& exists)
{
    for (const std::string& protocol : offered) {
        const std::string encoded = encode_alpn_name(protocol);
        if (encoded.empty() || encoded == "." || encoded == "..")
            continue;
        std::string socket = socket_path(entry_path(entry_path(host_dir, alpn_dir), encoded));
        if (socket.size() > max_unix_path || !exists(socket))
            continue;
        return AlpnChoice { protocol, std::move(socket) };
    }
    return std::nullopt;
}

} // namespace sniproxy
