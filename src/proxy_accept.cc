// proxy_accept.cc: decodes the PROXY v1 line or v2 block a balancer sends first (HAProxy's
// proxy-protocol.txt, sections 2.1 and 2.2). Strict where the spec is: anything that does not
// match exactly is refused, as early as the bytes allow, and nothing is read past the header.
#include "config.h"

#include "proxy_accept.h"

#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

namespace sniproxy {

namespace {

    constexpr std::string_view v1_prefix = "PROXY ";
    constexpr std::uint8_t v2_version = 0x2;
    constexpr std::uint8_t cmd_local = 0x0;
    constexpr std::uint8_t cmd_proxy = 0x1;
    constexpr std::size_t tlv_header = 3; // type, 2-byte length

    // Address block sizes of the family/transport bytes the spec lists (section 2.2); any
    // other byte is refused. Only TCP over IPv4/IPv6 carries a client we can use.
    bool v2_address_block(std::uint8_t fam, std::size_t* size, bool* usable)
    {
        *usable = fam == 0x11 || fam == 0x21;
        switch (fam) {
        case 0x00: // UNSPEC
            *size = 0;
            return true;
        case 0x11: // TCP over IPv4
        case 0x12: // UDP over IPv4
            *size = 12;
            return true;
        case 0x21: // TCP over IPv6
        case 0x22: // UDP over IPv6
            *size = 36;
            return true;
        case 0x31: // UNIX stream
        case 0x32: // UNIX datagram
            *size = 216;
            return true;
        default:
            return false;
        }
    }

    void set_address(
        sockaddr_storage* out, int family, const std::uint8_t* addr, std::uint16_t port)
    {
        std::memset(out, 0, sizeof *out);
        if (family == AF_INET) {
            sockaddr_in sin {};
            sin.sin_family = AF_INET;
            std::memcpy(&sin.sin_addr, addr, 4);
            sin.sin_port = htons(port);
            std::memcpy(out, &sin, sizeof sin);
        } else {
            sockaddr_in6 sin6 {};
            sin6.sin6_family = AF_INET6;
            std::memcpy(&sin6.sin6_addr, addr, 16);
            sin6.sin6_port = htons(port);
            std::memcpy(out, &sin6, sizeof sin6);
        }
    }

    // A decimal 0..65535 without leading zeros (the spec forbids them: octal confusion).
    bool parse_port(std::string_view text, std::uint16_t* port)
    {
        if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0'))
            return false;
        unsigned value = 0;
        for (char c : text) {
            if (c < '0' || c > '9')
                return false;
            value = value * 10 + static_cast<unsigned>(c - '0');
        }
        if (value > 65535)
            return false;
        *port = static_cast<std::uint16_t>(value);
        return true;
    }

    // inet_pton is strict: dotted quads without leading zeros, RFC 4291 text for IPv6.
    bool parse_address(std::string_view text, int family, std::uint8_t* addr)
    {
        if (text.empty() || text.size() >= INET6_ADDRSTRLEN)
            return false;
        char buf[INET6_ADDRSTRLEN];
        std::memcpy(buf, text.data(), text.size());
        buf[text.size()] = '\0';
        return inet_pton(family, buf, addr) == 1;
    }

} // namespace

const char* proxy_error_string(ProxyError error)
{
    switch (error) {
    case ProxyError::none:
        return "none";
    case ProxyError::truncated:
        return "truncated";
    case ProxyError::bad_signature:
        return "bad-signature";
    case ProxyError::bad_version:
        return "bad-version";
    case ProxyError::bad_command:
        return "bad-command";
    case ProxyError::bad_family:
        return "bad-family";
    case ProxyError::bad_length:
        return "bad-length";
    case ProxyError::bad_line:
        return "bad-line";
    case ProxyError::bad_address:
        return "bad-address";
    case ProxyError::bad_port:
        return "bad-port";
    case ProxyError::oversized:
        return "oversized";
    }
    return "unknown";
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::fail(ProxyError error)
{
    error_ = error;
    status_ = Status::error;
    buf_ = {};
    return status_;
}

// v1 is one line: judged byte by byte up to the CRLF, decoded once it is complete.
ProxyHeaderDecoder::Status ProxyHeaderDecoder::on_v1_byte()
{
    const std::size_t n = buf_.size();
    const std::uint8_t c = buf_.back();
    if (n <= v1_prefix.size())
        return c == static_cast<std::uint8_t>(v1_prefix[n - 1]) ? status_
                                                                : fail(ProxyError::bad_signature);
    if (c == '\n')
        return buf_[n - 2] == '\r' ? finish_v1() : fail(ProxyError::bad_line);
    if (n >= 2 && buf_[n - 2] == '\r')
        return fail(ProxyError::bad_line); // a CR not followed by LF
    // After "PROXY UNKNOWN" the spec says to ignore whatever comes before the CRLF.
    static constexpr std::string_view unknown = "PROXY UNKNOWN";
    const bool ignored = n > unknown.size()
        && std::equal(unknown.begin(), unknown.end(), buf_.begin(),
            [](char a, std::uint8_t b) { return static_cast<std::uint8_t>(a) == b; });
    if (c != '\r' && (c < 0x20 || c > 0x7e) && !ignored)
        return fail(ProxyError::bad_line);
    if (n >= proxy_v1_max_line)
        return fail(ProxyError::oversized);
    return status_;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::finish_v1()
{
    info_.version = 1;
    info_.header_len = buf_.size();
    const std::string_view line(reinterpret_cast<const char*>(buf_.data()) + v1_prefix.size(),
        buf_.size() - v1_prefix.size() - 2);
    std::string_view fields[6];
    std::size_t count = 0;
    std::size_t start = 0;
    for (;;) {
        const std::size_t space = line.find(' ', start);
        const std::string_view field = line.substr(start, space - start);
        if (count == 0 && field == "UNKNOWN") {
            // The rest of the line is the sender's business: the spec says to ignore it.
            status_ = Status::done;
            buf_ = {};
            return status_;
        }
        if (field.empty() || count == 5) // a double space, a trailing space, a sixth field
            return fail(ProxyError::bad_line);
        fields[count++] = field;
        if (space == std::string_view::npos)
            break;
        start = space + 1;
    }
    int family = AF_UNSPEC;
    if (fields[0] == "TCP4")
        family = AF_INET;
    else if (fields[0] == "TCP6")
        family = AF_INET6;
    else
        return fail(ProxyError::bad_family);
    if (count != 5)
        return fail(ProxyError::bad_line);
    std::uint8_t src[16];
    std::uint8_t dst[16];
    std::uint16_t sport = 0;
    std::uint16_t dport = 0;
    if (!parse_address(fields[1], family, src) || !parse_address(fields[2], family, dst))
        return fail(ProxyError::bad_address);
    if (!parse_port(fields[3], &sport) || !parse_port(fields[4], &dport))
        return fail(ProxyError::bad_port);
    set_address(&info_.source, family, src, sport);
    set_address(&info_.destination, family, dst, dport);
    info_.has_addresses = true;
    status_ = Status::done;
    buf_ = {};
    return status_;
}

// v2: the fixed 16 bytes are judged as they arrive, then the declared length is buffered.
ProxyHeaderDecoder::Status ProxyHeaderDecoder::on_v2_bytes()
{
    const std::size_t n = buf_.size();
    if (n <= proxy_v2_signature.size()) {
        if (!std::equal(buf_.begin(), buf_.end(), proxy_v2_signature.begin()))
            return fail(ProxyError::bad_signature);
        return status_;
    }
    const std::uint8_t ver_cmd = buf_[12];
    if (n == 13) {
        if (ver_cmd >> 4 != v2_version)
            return fail(ProxyError::bad_version);
        if ((ver_cmd & 0xf) != cmd_local && (ver_cmd & 0xf) != cmd_proxy)
            return fail(ProxyError::bad_command);
        return status_;
    }
    const bool local = (ver_cmd & 0xf) == cmd_local;
    std::size_t block = 0;
    bool usable = false;
    if (n == 14) {
        // LOCAL discards the block "including the family which is ignored" (section 2.2).
        if (!local && !v2_address_block(buf_[13], &block, &usable))
            return fail(ProxyError::bad_family);
        return status_;
    }
    if (n < proxy_v2_fixed_size)
        return status_;
    if (n == proxy_v2_fixed_size) {
        const std::size_t len = std::size_t { buf_[14] } << 8 | buf_[15];
        if (len > proxy_v2_max_payload)
            return fail(ProxyError::oversized);
        if (!local) {
            v2_address_block(buf_[13], &block, &usable);
            if (len < block)
                return fail(ProxyError::bad_length);
        }
        v2_total_ = proxy_v2_fixed_size + len;
    }
    if (n < v2_total_)
        return status_;
    return finish_v2();
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::finish_v2()
{
    info_.version = 2;
    info_.header_len = v2_total_;
    info_.local = (buf_[12] & 0xf) == cmd_local;
    if (!info_.local) {
        std::size_t block = 0;
        bool usable = false;
        v2_address_block(buf_[13], &block, &usable);
        const std::uint8_t* addr = buf_.data() + proxy_v2_fixed_size;
        if (usable) {
            const int family = buf_[13] == 0x11 ? AF_INET : AF_INET6;
            const std::size_t alen = family == AF_INET ? 4 : 16;
            const std::uint8_t* ports = addr + 2 * alen;
            set_address(
                &info_.source, family, addr, static_cast<std::uint16_t>(ports[0] << 8 | ports[1]));
            set_address(&info_.destination, family, addr + alen,
                static_cast<std::uint16_t>(ports[2] << 8 | ports[3]));
            info_.has_addresses = true;
        }
        // TLVs are skipped, but they must tile the rest of the header exactly.
        std::size_t off = proxy_v2_fixed_size + block;
        while (off < v2_total_) {
            if (v2_total_ - off < tlv_header)
                return fail(ProxyError::bad_length);
            const std::size_t vlen = std::size_t { buf_[off + 1] } << 8 | buf_[off + 2];
            if (vlen > v2_total_ - off - tlv_header)
                return fail(ProxyError::bad_length);
            off += tlv_header + vlen;
        }
    }
    status_ = Status::done;
    buf_ = {};
    return status_;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::feed(std::span<const std::uint8_t> bytes)
{
    while (status_ == Status::need_more && !bytes.empty()) {
        if (v2_total_ > buf_.size()) {
            // The v2 body: take all of it that is here at once.
            const std::size_t take = std::min(bytes.size(), v2_total_ - buf_.size());
            buf_.insert(
                buf_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
            bytes = bytes.subspan(take);
            on_v2_bytes();
            continue;
        }
        buf_.push_back(bytes[0]);
        bytes = bytes.subspan(1);
        if (buf_[0] == proxy_v2_signature[0])
            on_v2_bytes();
        else
            on_v1_byte();
    }
    return status_;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::end_of_stream()
{
    if (status_ == Status::need_more)
        fail(ProxyError::truncated);
    return status_;
}

ProxyResult decode_proxy_header(std::span<const std::uint8_t> bytes)
{
    ProxyHeaderDecoder decoder;
    decoder.feed(bytes);
    return { decoder.status(), decoder.error(), decoder.info() };
}

} // namespace sniproxy
