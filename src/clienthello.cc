// clienthello.cc: reassembles the ClientHello from TLS records (RFC 8446 5.1, 4.1.2) and
// extracts server_name (RFC 6066 3), ALPN (RFC 7301), supported_versions, ECH presence and
// the lists a fingerprint needs (cipher suites, extension types, signature_algorithms).
// Every length is checked against what it is nested in; nothing is trusted.
#include "clienthello.h"

#include <algorithm>
#include <bitset>

namespace sniproxy {

namespace {

    constexpr std::uint8_t content_handshake = 22;
    constexpr std::uint8_t handshake_client_hello = 1;
    constexpr std::uint16_t ext_server_name = 0;
    constexpr std::uint16_t ext_signature_algorithms = 13;
    constexpr std::uint16_t ext_alpn = 16;
    constexpr std::uint16_t ext_supported_versions = 43;
    constexpr std::uint16_t ext_ech = 0xfe0d;

    bool is_other_tls_content_type(std::uint8_t type)
    {
        // change_cipher_spec, alert, application_data, heartbeat
        return type == 20 || type == 21 || type == 23 || type == 24;
    }

    // A bounds-checked cursor over a byte span: every read fails rather than overruns.
    class Reader {
    public:
        explicit Reader(std::span<const std::uint8_t> bytes)
            : bytes_(bytes)
        {
        }

        std::size_t left() const { return bytes_.size(); }
        bool u8(std::uint8_t& v) { return take_int(1, v); }
        bool u16(std::uint16_t& v) { return take_int(2, v); }
        bool skip(std::size_t n) { return sub(n, nullptr); }
        // Splits off the next n bytes as their own Reader.
        bool sub(std::size_t n, Reader* out)
        {
            if (n > bytes_.size())
                return false;
            if (out)
                *out = Reader(bytes_.first(n));
            bytes_ = bytes_.subspan(n);
            return true;
        }
        std::span<const std::uint8_t> rest() const { return bytes_; }

    private:
        template <typename T> bool take_int(std::size_t n, T& v)
        {
            if (n > bytes_.size())
                return false;
            unsigned value = 0;
            for (std::size_t i = 0; i < n; i++)
                value = (value << 8) | bytes_[i];
            v = static_cast<T>(value);
            bytes_ = bytes_.subspan(n);
            return true;
        }
        std::span<const std::uint8_t> bytes_;
    };

    // Reads a vector with a length prefix of `prefix` bytes (1 or 2) that must fit exactly.
    bool prefixed(Reader& r, int prefix, Reader& out)
    {
        std::uint16_t len = 0;
        if (prefix == 1) {
            std::uint8_t l8 = 0;
            if (!r.u8(l8))
                return false;
            len = l8;
        } else if (!r.u16(len)) {
            return false;
        }
        return r.sub(len, &out);
    }

    HelloError parse_server_name(Reader ext, HelloInfo& info)
    {
        Reader list(ext.rest());
        if (!prefixed(ext, 2, list) || ext.left() != 0 || list.left() == 0)
            return HelloError::bad_server_name;
        while (list.left() > 0) {
            std::uint8_t type = 0;
            Reader name(std::span<const std::uint8_t> {});
            if (!list.u8(type) || !prefixed(list, 2, name) || name.left() == 0)
                return HelloError::bad_server_name;
            if (type != 0) // other name types: skipped, as RFC 6066 allows
                continue;
            if (info.has_sni)
                return HelloError::duplicate_server_name;
            info.has_sni = true;
            info.sni.assign(name.rest().begin(), name.rest().end());
        }
        return HelloError::none;
    }

    HelloError parse_alpn(Reader ext, HelloInfo& info)
    {
        Reader list(ext.rest());
        if (!prefixed(ext, 2, list) || ext.left() != 0 || list.left() < 2)
            return HelloError::bad_alpn;
        while (list.left() > 0) {
            Reader proto(std::span<const std::uint8_t> {});
            if (!prefixed(list, 1, proto) || proto.left() == 0)
                return HelloError::bad_alpn;
            info.alpn.emplace_back(proto.rest().begin(), proto.rest().end());
        }
        return HelloError::none;
    }

    HelloError parse_supported_versions(Reader ext, HelloInfo& info)
    {
        Reader list(ext.rest());
        if (!prefixed(ext, 1, list) || ext.left() != 0 || list.left() < 2 || list.left() % 2)
            return HelloError::bad_supported_versions;
        std::uint16_t version = 0;
        while (list.u16(version))
            info.supported_versions.push_back(version);
        return HelloError::none;
    }

    // Reads a list of 16-bit values that fills `r` exactly; false (out untouched) otherwise.
    bool u16_list(Reader r, std::vector<std::uint16_t>& out)
    {
        if (r.left() % 2)
            return false;
        out.reserve(r.left() / 2);
        std::uint16_t v = 0;
        while (r.u16(v))
            out.push_back(v);
        return true;
    }

    void parse_signature_algorithms(Reader ext, HelloInfo& info)
    {
        Reader list(ext.rest());
        if (prefixed(ext, 2, list) && ext.left() == 0)
            u16_list(list, info.signature_algorithms);
    }

    HelloError parse_extension(std::uint16_t type, Reader data, HelloInfo& info)
    {
        switch (type) {
        case ext_signature_algorithms:
            parse_signature_algorithms(data, info);
            return HelloError::none;
        case ext_server_name:
            return parse_server_name(data, info);
        case ext_alpn:
            return parse_alpn(data, info);
        case ext_supported_versions:
            return parse_supported_versions(data, info);
        case ext_ech:
            info.ech = true;
            return HelloError::none;
        default:
            return HelloError::none;
        }
    }

} // namespace

const char* hello_error_string(HelloError error)
{
    switch (error) {
    case HelloError::none:
        return "none";
    case HelloError::not_tls:
        return "not-tls";
    case HelloError::sslv2_hello:
        return "sslv2-hello";
    case HelloError::not_handshake:
        return "not-handshake";
    case HelloError::bad_record_version:
        return "bad-record-version";
    case HelloError::empty_record:
        return "empty-record";
    case HelloError::record_too_large:
        return "record-too-large";
    case HelloError::interleaved_record:
        return "interleaved-record";
    case HelloError::not_client_hello:
        return "not-client-hello";
    case HelloError::hello_too_large:
        return "hello-too-large";
    case HelloError::trailing_data:
        return "trailing-data";
    case HelloError::truncated_body:
        return "truncated-body";
    case HelloError::bad_extensions:
        return "bad-extensions";
    case HelloError::duplicate_extension:
        return "duplicate-extension";
    case HelloError::bad_server_name:
        return "bad-server-name";
    case HelloError::duplicate_server_name:
        return "duplicate-server-name";
    case HelloError::bad_alpn:
        return "bad-alpn";
    case HelloError::bad_supported_versions:
        return "bad-supported-versions";
    }
    return "unknown";
}

Alert hello_error_alert(HelloError error)
{
    switch (error) {
    case HelloError::none:
    case HelloError::not_tls: // not TLS: no answer a non-TLS peer could read
    case HelloError::sslv2_hello: // an SSLv2 peer cannot read a TLS alert record either
    case HelloError::bad_record_version:
        return Alert::none;
    case HelloError::not_handshake:
    case HelloError::interleaved_record:
    case HelloError::not_client_hello:
        return Alert::unexpected_message;
    case HelloError::record_too_large:
    case HelloError::hello_too_large:
        return Alert::record_overflow;
    case HelloError::duplicate_extension:
    case HelloError::duplicate_server_name:
        return Alert::illegal_parameter;
    case HelloError::empty_record:
    case HelloError::trailing_data:
    case HelloError::truncated_body:
    case HelloError::bad_extensions:
    case HelloError::bad_server_name:
    case HelloError::bad_alpn:
    case HelloError::bad_supported_versions:
        return Alert::decode_error;
    }
    return Alert::decode_error;
}

HelloError parse_client_hello_body(std::span<const std::uint8_t> body, HelloInfo& info)
{
    Reader r(body);
    Reader field(body);
    if (!r.u16(info.legacy_version) || !r.skip(32) // random
        || !prefixed(r, 1, field) || field.left() > 32 // legacy_session_id
        || !prefixed(r, 2, field) || field.left() < 2 || !u16_list(field, info.cipher_suites)
        || !prefixed(r, 1, field) || field.left() < 1) // legacy_compression_methods
        return HelloError::truncated_body;
    if (r.left() == 0) // TLS 1.0-1.2 allow a hello without extensions
        return HelloError::none;

    Reader exts(body);
    if (!prefixed(r, 2, exts) || r.left() != 0)
        return HelloError::bad_extensions;
    std::bitset<65536> seen;
    info.extensions.reserve(exts.left() / 4); // each takes at least 4 bytes: one allocation
    while (exts.left() > 0) {
        std::uint16_t type = 0;
        Reader data(body);
        if (!exts.u16(type) || !prefixed(exts, 2, data))
            return HelloError::bad_extensions;
        if (seen.test(type))
            return HelloError::duplicate_extension;
        seen.set(type);
        info.extensions.push_back(type);
        if (HelloError e = parse_extension(type, data, info); e != HelloError::none)
            return e;
    }
    return HelloError::none;
}

ClientHelloParser::ClientHelloParser(std::size_t max_hello)
    : max_hello_(max_hello)
{
}

ClientHelloParser::Status ClientHelloParser::fail(HelloError error)
{
    error_ = error;
    status_ = Status::error;
    message_ = {};
    return status_;
}

// Judges the record header as soon as each byte arrives, so that garbage is refused
// without waiting for more of it.
ClientHelloParser::Status ClientHelloParser::on_record_header()
{
    const std::uint8_t type = header_[0];
    if (first_record_ && header_len_ == 1 && type != content_handshake
        && !is_other_tls_content_type(type) && !(type & 0x80))
        return fail(HelloError::not_tls);
    if (first_record_ && (type & 0x80)) {
        // SSLv2 record: 2-byte length with the top bit set, then msg_type 1 (CLIENT-HELLO).
        if (header_len_ < 3)
            return status_;
        return fail(header_[2] == 1 ? HelloError::sslv2_hello : HelloError::not_tls);
    }
    if (header_len_ == 2 && header_[1] != 3) {
        if (type != content_handshake && first_record_)
            return fail(HelloError::not_tls);
        return fail(HelloError::bad_record_version);
    }
    if (header_len_ == 2 && type != content_handshake)
        return fail(first_record_ ? HelloError::not_handshake : HelloError::interleaved_record);
    if (header_len_ < 5)
        return status_;
    record_left_ = std::size_t { header_[3] } << 8 | header_[4];
    if (record_left_ == 0)
        return fail(HelloError::empty_record);
    if (record_left_ > max_record)
        return fail(HelloError::record_too_large);
    first_record_ = false;
    return status_;
}

ClientHelloParser::Status ClientHelloParser::on_message_bytes(std::span<const std::uint8_t> bytes)
{
    const std::size_t before = message_.size();
    message_.insert(message_.end(), bytes.begin(), bytes.end());
    if (before < 1 && !message_.empty() && message_[0] != handshake_client_hello)
        return fail(HelloError::not_client_hello);
    if (before < 4 && message_.size() >= 4) {
        message_len_
            = std::size_t { message_[1] } << 16 | std::size_t { message_[2] } << 8 | message_[3];
        if (message_len_ + 4 > max_hello_)
            return fail(HelloError::hello_too_large);
        message_.reserve(message_len_ + 4);
    }
    if (message_.size() < 4 || message_.size() < message_len_ + 4)
        return status_;
    // The hello is complete: it must also end its record (one message, nothing after it).
    if (message_.size() > message_len_ + 4 || record_left_ != 0)
        return fail(HelloError::trailing_data);
    HelloError e = parse_client_hello_body(std::span(message_).subspan(4), info_);
    if (e != HelloError::none)
        return fail(e);
    message_ = {};
    status_ = Status::done;
    return status_;
}

ClientHelloParser::Status ClientHelloParser::feed(std::span<const std::uint8_t> bytes)
{
    while (status_ == Status::need_more && !bytes.empty()) {
        if (record_left_ == 0) {
            header_[header_len_++] = bytes[0];
            bytes = bytes.subspan(1);
            consumed_++;
            on_record_header();
            continue;
        }
        const std::size_t n = std::min(record_left_, bytes.size());
        // Never buffer past what the declared hello length allows.
        const std::size_t want
            = message_.size() < 4 ? 4 - message_.size() : message_len_ + 4 - message_.size();
        const std::size_t take = std::min(n, want);
        record_left_ -= take;
        consumed_ += take;
        const auto chunk = bytes.first(take);
        bytes = bytes.subspan(take);
        if (record_left_ == 0)
            header_len_ = 0;
        on_message_bytes(chunk);
    }
    return status_;
}

HelloResult parse_client_hello(std::span<const std::uint8_t> bytes, std::size_t max_hello)
{
    ClientHelloParser parser(max_hello);
    parser.feed(bytes);
    return { parser.status(), parser.error(), parser.info(), parser.consumed() };
}

} // namespace sniproxy
