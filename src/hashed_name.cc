// hashed_name.cc: BLAKE2s-256 + base64url directory names, and the sun_path threshold.
#include "hashed_name.h"

#include "hosts_layout.h"

#include <blake2.h>

#include <cstdint>

namespace sniproxy {

std::string base64url_unpadded(const unsigned char* data, std::size_t len)
{
    static constexpr char alphabet[]
        = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((len * 4 + 2) / 3);
    std::size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        std::uint32_t v = (std::uint32_t { data[i] } << 16) | (std::uint32_t { data[i + 1] } << 8)
            | data[i + 2];
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    // One or two bytes left: 2 or 3 characters, the unused low bits zero, no '=' padding.
    if (std::size_t rest = len - i; rest > 0) {
        std::uint32_t v = std::uint32_t { data[i] } << 16;
        if (rest == 2)
            v |= std::uint32_t { data[i + 1] } << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        if (rest == 2)
            out += alphabet[(v >> 6) & 63];
    }
    return out;
}

std::string hashed_name(std::string_view name)
{
    unsigned char digest[BLAKE2S_OUTBYTES];
    // blake2s only fails on null pointers or bad lengths, none of which can happen here.
    blake2s(digest, name.data(), nullptr, sizeof digest, name.size(), 0);
    return base64url_unpadded(digest, sizeof digest);
}

std::string host_directory(std::string_view candidate, bool all_hashed)
{
    if (candidate == default_route_name || candidate == nosni_route_name)
        return std::string(candidate);
    if (all_hashed || !socket_path_fits(candidate))
        return hashed_name(candidate);
    return std::string(candidate);
}

} // namespace sniproxy
