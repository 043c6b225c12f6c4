// clienthello.h: an incremental, I/O-free parser for the TLS ClientHello that opens a
// connection. It is fed the client's bytes as they arrive and answers "need more",
// "done" (with the facts a router needs) or "error" (a reason and the alert to send).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sniproxy {

// TLS alert descriptions we may send (RFC 8446 section 6). `none` means close silently.
enum class Alert : std::uint8_t {
    none = 0,
    unexpected_message = 10,
    record_overflow = 22,
    illegal_parameter = 47,
    access_denied = 49,
    decode_error = 50,
    internal_error = 80,
    unrecognized_name = 112,
};

enum class HelloError {
    none,
    not_tls, // first bytes are not a TLS record at all (an HTTP request, say)
    sslv2_hello, // an SSLv2-compatible hello: no extensions, so no SNI; refused
    not_handshake, // first record is a TLS record of another type
    bad_record_version, // record header version is not 3.x
    empty_record, // zero-length handshake record (forbidden by RFC 8446 5.1)
    record_too_large, // record longer than 2^14 bytes
    interleaved_record, // a non-handshake record in the middle of the hello
    not_client_hello, // first handshake message is not a ClientHello
    hello_too_large, // ClientHello longer than the configured bound
    trailing_data, // more handshake bytes after the ClientHello in its last record
    truncated_body, // a ClientHello field runs past the end of the message
    bad_extensions, // extension block lengths do not add up
    duplicate_extension,
    bad_server_name, // server_name extension malformed
    duplicate_server_name, // more than one host_name entry
    bad_alpn,
    bad_supported_versions,
};

// Short kebab-case name for logs ("hello-too-large").
const char* hello_error_string(HelloError error);
// The alert a server sends for this error (Alert::none: close without an answer).
Alert hello_error_alert(HelloError error);

// What the router learns from a ClientHello.
struct HelloInfo {
    bool has_sni = false;
    std::string sni; // raw host_name bytes, unvalidated: may hold anything
    std::vector<std::string> alpn; // offered protocols, in the client's order
    std::vector<std::uint16_t> supported_versions;
    std::uint16_t legacy_version = 0;
    bool ech = false; // encrypted_client_hello (0xfe0d) present
    // What a fingerprint (JA4) needs, in the client's order, GREASE values included.
    std::vector<std::uint16_t> cipher_suites;
    std::vector<std::uint16_t> extensions; // extension types
    // signature_algorithms (13); left empty when absent or malformed, as a malformed one
    // is the backend's to refuse (the hello is still routed as before).
    std::vector<std::uint16_t> signature_algorithms;
};

// Parses the body of a ClientHello handshake message (after the 4-byte handshake header).
HelloError parse_client_hello_body(std::span<const std::uint8_t> body, HelloInfo& info);

class ClientHelloParser {
public:
    enum class Status { need_more, done, error };

    static constexpr std::size_t default_max_hello = 16384;
    static constexpr std::size_t max_record = 16384; // 2^14, RFC 8446 5.1

    explicit ClientHelloParser(std::size_t max_hello = default_max_hello);

    // Feeds the next bytes of the stream. Bytes past the end of the record that completes
    // the hello are not examined (they belong to the connection, not to the hello).
    Status feed(std::span<const std::uint8_t> bytes);

    Status status() const { return status_; }
    HelloError error() const { return error_; }
    Alert alert() const { return hello_error_alert(error_); }
    const HelloInfo& info() const { return info_; }
    // Stream bytes up to the end of the record that completed the hello (valid when done).
    std::size_t consumed() const { return consumed_; }

private:
    Status fail(HelloError error);
    Status on_record_header();
    Status on_message_bytes(std::span<const std::uint8_t> bytes);

    std::size_t max_hello_;
    Status status_ = Status::need_more;
    HelloError error_ = HelloError::none;
    HelloInfo info_;
    std::size_t consumed_ = 0;

    std::uint8_t header_[5] {};
    std::size_t header_len_ = 0;
    std::size_t record_left_ = 0; // body bytes of the current record not yet seen
    bool first_record_ = true;
    std::size_t message_len_ = 0; // from the handshake header, once known
    std::vector<std::uint8_t> message_; // the handshake message, reassembled
};

// One-shot convenience for tests and the fuzzer: parse a whole prefix of a stream.
struct HelloResult {
    ClientHelloParser::Status status;
    HelloError error;
    HelloInfo info;
    std::size_t consumed;
};
HelloResult parse_client_hello(std::span<const std::uint8_t> bytes,
    std::size_t max_hello = ClientHelloParser::default_max_hello);

} // namespace sniproxy
