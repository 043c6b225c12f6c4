// proxy_accept.h: an incremental, bounded, I/O-free decoder for the PROXY protocol v1 or v2
// header a balancer (a `proxy-from` address) puts before the ClientHello. It is fed the bytes
// as they arrive and answers "need more", "done" (the addresses and the header's length) or
// "error" (a reason for the log). Specification: HAProxy's proxy-protocol.txt.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sniproxy {

enum class ProxyError {
    none,
    truncated, // the stream ended (end_of_stream) before the header did
    bad_signature, // neither "PROXY " (v1) nor the 12-byte v2 signature
    bad_version, // v2 version nibble is not 2
    bad_command, // v2 command is neither LOCAL nor PROXY
    bad_family, // v1 protocol not TCP4/TCP6/UNKNOWN; v2 family/transport byte not in the spec
    bad_length, // v2 length shorter than the address block, or TLVs that do not tile it
    bad_line, // v1 line malformed: missing or extra fields, a lone CR or LF, control bytes
    bad_address, // v1 address not canonical for its family
    bad_port, // v1 port not a decimal 0..65535 without leading zeros
    oversized, // v1 line over 107 bytes, v2 header over proxy_v2_max_header
};

// Short kebab-case name for logs ("bad-signature").
const char* proxy_error_string(ProxyError error);

// The v1 line including CRLF can be at most 107 bytes (the spec's worst case, UNKNOWN with two
// full IPv6 addresses). v2 headers are 16 bytes plus a length the sender chooses; we accept up
// to 1024 bytes after the fixed part: room for an AF_UNIX address block (216) and the TLVs
// balancers add (AWS, Azure, GCP ids, HAProxy's SSL and unique-id TLVs are tens to a few
// hundred bytes), while a connection cannot make us buffer more than this before its hello.
inline constexpr std::size_t proxy_v1_max_line = 107;
inline constexpr std::size_t proxy_v2_max_payload = 1024;
inline constexpr std::size_t proxy_v2_max_header = 16 + proxy_v2_max_payload;

struct ProxyInfo {
    int version = 0; // 1 or 2
    // v2 LOCAL: the balancer's own connection (a health check). Like v1 UNKNOWN and v2
    // families we do not take addresses from (UNSPEC, UDP, UNIX), it carries no client address:
    // has_addresses is false and the balancer's own address is the source.
    bool local = false;
    bool has_addresses = false;
    sockaddr_storage source {}; // AF_INET or AF_INET6 with the port, when has_addresses
    sockaddr_storage destination {};
    std::size_t header_len = 0; // stream bytes that belong to the header (the hello follows)
};

class ProxyHeaderDecoder {
public:
    enum class Status { need_more, done, error };

    // Feeds the next bytes of the stream. Only header bytes are taken; bytes after the header
    // (the ClientHello) are left for the caller: they start at info().header_len in the
    // stream. After done or error further feeds change nothing.
    Status feed(std::span<const std::uint8_t> bytes);
    // The peer closed its side: a header still incomplete is truncated.
    Status end_of_stream();

    Status status() const { return status_; }
    ProxyError error() const { return error_; }
    const ProxyInfo& info() const { return info_; } // valid when done

private:
    Status fail(ProxyError error);
    Status on_v1_byte();
    Status on_v2_bytes();
    Status finish_v1();
    Status finish_v2();

    Status status_ = Status::need_more;
    ProxyError error_ = ProxyError::none;
    ProxyInfo info_;
    std::vector<std::uint8_t> buf_; // the header so far, never more than the bound
    std::size_t v2_total_ = 0; // 16 + length, once the fixed part is in
};

// One-shot convenience for tests and the fuzzer: decode a whole prefix of a stream.
struct ProxyResult {
    ProxyHeaderDecoder::Status status;
    ProxyError error;
    ProxyInfo info;
};
ProxyResult decode_proxy_header(std::span<const std::uint8_t> bytes);

} // namespace sniproxy
