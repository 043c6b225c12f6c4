// proxy_accept_test.cc: the PROXY v1/v2 decoder against headers as HAProxy and cloud
// balancers send them, split at every byte, and against each malformation it must refuse.
#include "catch.h"
#include "proxy_accept.h"
#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace sniproxy;
using Status = ProxyHeaderDecoder::Status;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes bytes(const std::string& s)
{
    return Bytes(s.begin(), s.end());
}

void append(Bytes& b, const Bytes& more)
{
    b.insert(b.end(), more.begin(), more.end());
}

// A v2 header: signature, ver/cmd, fam, then `rest` (addresses and TLVs) with its length.
Bytes v2(std::uint8_t ver_cmd, std::uint8_t fam, const Bytes& rest)
{
    Bytes b(proxy_v2_signature.begin(), proxy_v2_signature.end());
    b.push_back(ver_cmd);
    b.push_back(fam);
    b.push_back(static_cast<std::uint8_t>(rest.size() >> 8));
    b.push_back(static_cast<std::uint8_t>(rest.size()));
    append(b, rest);
    return b;
}

Bytes tlv(std::uint8_t type, const Bytes& value)
{
    Bytes b { type, static_cast<std::uint8_t>(value.size() >> 8),
        static_cast<std::uint8_t>(value.size()) };
    append(b, value);
    return b;
}

// 192.0.2.7:51000 -> 198.51.100.1:443
const Bytes tcp4_block { 192, 0, 2, 7, 198, 51, 100, 1, 0xc7, 0x38, 0x01, 0xbb };

std::string text(const sockaddr_storage& ss)
{
    char buf[INET6_ADDRSTRLEN] = "?";
    std::uint16_t port = 0;
    if (ss.ss_family == AF_INET) {
        sockaddr_in sin;
        std::memcpy(&sin, &ss, sizeof sin);
        inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof buf);
        port = ntohs(sin.sin_port);
        return std::string(buf) + ":" + std::to_string(port);
    }
    if (ss.ss_family == AF_INET6) {
        sockaddr_in6 sin6;
        std::memcpy(&sin6, &ss, sizeof sin6);
        inet_ntop(AF_INET6, &sin6.sin6_addr, buf, sizeof buf);
        port = ntohs(sin6.sin6_port);
        return "[" + std::string(buf) + "]:" + std::to_string(port);
    }
    return "none";
}

ProxyError error_of(const Bytes& b)
{
    return decode_proxy_header(b).error;
}

// The error after only the first n bytes: proof that it is found that early.
ProxyError error_after(const Bytes& b, std::size_t n)
{
    return decode_proxy_header(std::span(b).first(n)).error;
}

// Feeds `stream` split at `cut` and checks the answer equals the one-shot one.
void same_in_two_pieces(const Bytes& stream)
{
    const ProxyResult whole = decode_proxy_header(stream);
    for (std::size_t cut = 0; cut <= stream.size(); cut++) {
        ProxyHeaderDecoder d;
        d.feed(std::span(stream).first(cut));
        d.feed(std::span(stream).subspan(cut));
        INFO("cut " << cut);
        REQUIRE(d.status() == whole.status);
        REQUIRE(d.error() == whole.error);
        if (whole.status == Status::done) {
            REQUIRE(d.info().header_len == whole.info.header_len);
            REQUIRE(text(d.info().source) == text(whole.info.source));
        }
    }
    ProxyHeaderDecoder bytewise;
    for (std::uint8_t b : stream)
        bytewise.feed(std::span(&b, 1));
    REQUIRE(bytewise.status() == whole.status);
    REQUIRE(bytewise.error() == whole.error);
}

} // namespace

TEST_CASE("v1 TCP4 and TCP6 lines give the client and leave the hello alone")
{
    Bytes stream = bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n");
    const std::size_t len = stream.size();
    append(stream, Bytes { 0x16, 0x03, 0x01, 0x00, 0x05 }); // the ClientHello starts here
    const ProxyResult r = decode_proxy_header(stream);
    REQUIRE(r.status == Status::done);
    CHECK(r.info.version == 1);
    CHECK(r.info.has_addresses);
    CHECK(!r.info.local);
    CHECK(r.info.header_len == len);
    CHECK(text(r.info.source) == "192.0.2.7:51000");
    CHECK(text(r.info.destination) == "198.51.100.1:443");
    same_in_two_pieces(stream);

    const ProxyResult six
        = decode_proxy_header(bytes("PROXY TCP6 2001:db8::1 2001:db8::2:1 65535 0\r\n"));
    REQUIRE(six.status == Status::done);
    CHECK(text(six.info.source) == "[2001:db8::1]:65535");
    CHECK(text(six.info.destination) == "[2001:db8::2:1]:0");
}

TEST_CASE("v1 UNKNOWN is accepted without addresses, with or without the rest")
{
    for (const char* line : { "PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
             "PROXY UNKNOWN \x01\xff anything\r\n" }) {
        INFO(line);
        const ProxyResult r = decode_proxy_header(bytes(line));
        REQUIRE(r.status == Status::done);
        CHECK(!r.info.has_addresses);
        CHECK(r.info.header_len == std::strlen(line));
    }
}

TEST_CASE("the longest v1 line is accepted, one byte more is oversized")
{
    const std::string six39 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const std::string worst = "PROXY UNKNOWN " + six39 + " " + six39 + " 65535 65535\r\n";
    REQUIRE(worst.size() == 107);
    CHECK(decode_proxy_header(bytes(worst)).status == Status::done);
    const std::string longer = "PROXY UNKNOWN " + six39 + " " + six39 + " 65535 655350\r\n";
    CHECK(error_of(bytes(longer)) == ProxyError::oversized);
    // Refused at byte 107, without waiting for a CRLF that may never come.
    ProxyHeaderDecoder d;
    CHECK(d.feed(bytes("PROXY UNKNOWN " + std::string(93, 'x'))) == Status::error);
    CHECK(d.error() == ProxyError::oversized);
}

TEST_CASE("v1 malformations, each with its reason")
{
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\n")) == ProxyError::bad_line);
    CHECK(
        error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\rX")) == ProxyError::bad_line);
    CHECK(error_of(bytes("PROXY TCP4  192.0.2.7 198.51.100.1 51000 443\r\n"))
        == ProxyError::bad_line);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000\r\n")) == ProxyError::bad_line);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000 443 \r\n"))
        == ProxyError::bad_line);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.7\t198.51.100.1 51000 443\r\n"))
        == ProxyError::bad_line);
    CHECK(error_of(bytes("PROXY UDP4 192.0.2.7 198.51.100.1 51000 443\r\n"))
        == ProxyError::bad_family);
    CHECK(error_of(bytes("PROXY \r\n")) == ProxyError::bad_line);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.07 198.51.100.1 51000 443\r\n"))
        == ProxyError::bad_address);
    CHECK(error_of(bytes("PROXY TCP4 2001:db8::1 198.51.100.1 51000 443\r\n"))
        == ProxyError::bad_address);
    CHECK(error_of(bytes("PROXY TCP6 192.0.2.7 2001:db8::1 51000 443\r\n"))
        == ProxyError::bad_address);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.256 198.51.100.1 51000 443\r\n"))
        == ProxyError::bad_address);
    CHECK(
        error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n")) == ProxyError::bad_port);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 051000 443\r\n"))
        == ProxyError::bad_port);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000 0443\r\n"))
        == ProxyError::bad_port);
    CHECK(error_of(bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000 +443\r\n"))
        == ProxyError::bad_port);
    // A wrong prefix is refused at its first wrong byte: an HTTP request or a TLS hello.
    CHECK(decode_proxy_header(bytes("G")).error == ProxyError::bad_signature);
    CHECK(decode_proxy_header(Bytes { 0x16 }).error == ProxyError::bad_signature);
    CHECK(error_of(bytes("PROXYTCP4")) == ProxyError::bad_signature);
    CHECK(error_of(bytes("proxy TCP4")) == ProxyError::bad_signature);
}

TEST_CASE("v2 PROXY over IPv4 and IPv6, with cloud balancers' TLVs")
{
    // AWS (0xEA, VPC endpoint id), Azure (0xEE, link id), GCP (0xE0, PSC id), ALPN, NOOP.
    Bytes rest = tcp4_block;
    append(rest, tlv(0xEA, bytes("\x01vpce-08d2bf15fac5001c9")));
    append(rest, tlv(0xEE, Bytes { 0x01, 0x11, 0x22, 0x33, 0x44 }));
    append(rest, tlv(0xE0, Bytes(8, 0x42)));
    append(rest, tlv(0x01, bytes("h2")));
    append(rest, tlv(0x04, {}));
    Bytes stream = v2(0x21, 0x11, rest);
    const std::size_t len = stream.size();
    append(stream, Bytes { 0x16, 0x03, 0x01 });
    const ProxyResult r = decode_proxy_header(stream);
    REQUIRE(r.status == Status::done);
    CHECK(r.info.version == 2);
    CHECK(r.info.has_addresses);
    CHECK(r.info.header_len == len);
    CHECK(text(r.info.source) == "192.0.2.7:51000");
    CHECK(text(r.info.destination) == "198.51.100.1:443");
    same_in_two_pieces(stream);

    Bytes six(16, 0);
    six[0] = 0x20;
    six[1] = 0x01;
    six[15] = 1;
    Bytes dst6 = six;
    dst6[15] = 2;
    append(six, dst6);
    append(six, Bytes { 0x00, 0x50, 0x01, 0xbb });
    const ProxyResult r6 = decode_proxy_header(v2(0x21, 0x21, six));
    REQUIRE(r6.status == Status::done);
    CHECK(text(r6.info.source) == "[2001::1]:80");
    CHECK(text(r6.info.destination) == "[2001::2]:443");
}

TEST_CASE("headers captured from a real HAProxy")
{
    auto read = [](const std::string& name) {
        std::ifstream in(std::string(TEST_DATA_DIR) + "/proxy/" + name, std::ios::binary);
        return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    const Bytes proxied = read("haproxy-2.6-v2-proxy.bin");
    REQUIRE(proxied.size() == 48);
    const ProxyResult r = decode_proxy_header(proxied);
    REQUIRE(r.status == Status::done);
    CHECK(r.info.header_len == 38); // the client's 10 bytes follow, untouched
    CHECK(text(r.info.source) == "127.0.0.1:39622");
    CHECK(text(r.info.destination) == "127.0.0.1:28401");
    same_in_two_pieces(proxied);

    const Bytes check = read("haproxy-2.6-v2-local.bin");
    const ProxyResult local = decode_proxy_header(check);
    REQUIRE(local.status == Status::done);
    CHECK(local.info.local);
    CHECK(local.info.header_len == check.size());

    const Bytes v1 = read("haproxy-2.6-v1.bin");
    const ProxyResult r1 = decode_proxy_header(v1);
    REQUIRE(r1.status == Status::done);
    CHECK(text(r1.info.source) == "127.0.0.1:55512");
    CHECK(v1.size() - r1.info.header_len == 10);
}

TEST_CASE("our own v2 encoder's headers decode to what it was given")
{
    sockaddr_in client {};
    client.sin_family = AF_INET;
    client.sin_port = htons(40000);
    inet_pton(AF_INET, "203.0.113.9", &client.sin_addr);
    sockaddr_in local {};
    local.sin_family = AF_INET;
    local.sin_port = htons(443);
    inet_pton(AF_INET, "192.0.2.1", &local.sin_addr);
    sockaddr_storage c {};
    sockaddr_storage l {};
    std::memcpy(&c, &client, sizeof client);
    std::memcpy(&l, &local, sizeof local);
    const ProxyResult r = decode_proxy_header(proxy_v2_header(c, l, "example.com", "h2"));
    REQUIRE(r.status == Status::done);
    CHECK(text(r.info.source) == "203.0.113.9:40000");
    const std::string line = proxy_v1_header(c, l);
    const ProxyResult r1 = decode_proxy_header(bytes(line));
    REQUIRE(r1.status == Status::done);
    CHECK(text(r1.info.destination) == "192.0.2.1:443");
}

TEST_CASE("v2 LOCAL (health checks) and families we take no address from")
{
    const ProxyResult local = decode_proxy_header(v2(0x20, 0x00, {}));
    REQUIRE(local.status == Status::done);
    CHECK(local.info.local);
    CHECK(!local.info.has_addresses);
    CHECK(local.info.header_len == 16);
    // LOCAL ignores the family and skips whatever block it declares.
    const ProxyResult local_block = decode_proxy_header(v2(0x20, 0x11, tcp4_block));
    REQUIRE(local_block.status == Status::done);
    CHECK(local_block.info.header_len == 28);
    CHECK(!local_block.info.has_addresses);

    // UNSPEC, UDP and UNIX under PROXY: valid, but the balancer's address stays the source.
    for (std::uint8_t fam : { 0x00, 0x12, 0x31 }) {
        INFO(int(fam));
        const std::size_t block = fam == 0x00 ? 0 : fam == 0x12 ? 12 : 216;
        const ProxyResult r = decode_proxy_header(v2(0x21, fam, Bytes(block, 7)));
        REQUIRE(r.status == Status::done);
        CHECK(!r.info.has_addresses);
        CHECK(!r.info.local);
    }
}

TEST_CASE("v2 malformations, each refused as early as the bytes allow")
{
    Bytes bad_sig = v2(0x21, 0x11, tcp4_block);
    bad_sig[6] = 0x0B;
    CHECK(error_after(bad_sig, 7) == ProxyError::bad_signature);

    CHECK(error_after(v2(0x11, 0x11, tcp4_block), 13) == ProxyError::bad_version);
    CHECK(error_after(v2(0x22, 0x11, tcp4_block), 13) == ProxyError::bad_command);
    for (std::uint8_t fam : { 0x13, 0x41, 0x10, 0x01, 0xff }) {
        INFO(int(fam));
        CHECK(error_after(v2(0x21, fam, tcp4_block), 14) == ProxyError::bad_family);
    }
    // A length shorter than the family's address block.
    CHECK(error_of(v2(0x21, 0x11, Bytes(11, 0))) == ProxyError::bad_length);
    CHECK(error_of(v2(0x21, 0x21, Bytes(12, 0))) == ProxyError::bad_length);
    // TLVs that do not tile the rest: a half TLV header, a value past the end.
    Bytes half = tcp4_block;
    append(half, Bytes { 0x04, 0x00 });
    CHECK(error_of(v2(0x21, 0x11, half)) == ProxyError::bad_length);
    Bytes over = tcp4_block;
    append(over, Bytes { 0x04, 0x00, 0x05, 1, 2, 3, 4 });
    CHECK(error_of(v2(0x21, 0x11, over)) == ProxyError::bad_length);
    // Oversized from the 16 fixed bytes alone: nothing more is buffered.
    Bytes big = v2(0x21, 0x11, tcp4_block);
    big[14] = 0x04;
    big[15] = 0x01; // 1025
    CHECK(error_after(big, 16) == ProxyError::oversized);
    Bytes max_rest = tcp4_block;
    append(max_rest, tlv(0x04, Bytes(proxy_v2_max_payload - 12 - 3, 0)));
    CHECK(decode_proxy_header(v2(0x21, 0x11, max_rest)).status == Status::done);
}

TEST_CASE("an incomplete header needs more, and is truncated at end of stream")
{
    const Bytes streams[]
        = { bytes("PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n"), v2(0x21, 0x11, tcp4_block) };
    for (const Bytes& full : streams) {
        for (std::size_t len = 0; len < full.size(); len++) {
            ProxyHeaderDecoder d;
            REQUIRE(d.feed(std::span(full).first(len)) == Status::need_more);
            REQUIRE(d.end_of_stream() == Status::error);
            REQUIRE(d.error() == ProxyError::truncated);
        }
        ProxyHeaderDecoder done;
        REQUIRE(done.feed(full) == Status::done);
        CHECK(done.end_of_stream() == Status::done);
        // A decoder that has decided does not change its mind.
        CHECK(done.feed(bytes("garbage")) == Status::done);
        CHECK(done.info().header_len == full.size());
    }
}

TEST_CASE("every error has a name and every byte flip of a header is handled")
{
    Bytes rest = tcp4_block;
    append(rest, tlv(0xEA, bytes("vpce-1")));
    const Bytes headers[]
        = { v2(0x21, 0x11, rest), bytes("PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n") };
    const std::uint8_t values[] = { 0x00, 0x01, 0x0a, 0x0d, 0x20, 0x7f, 0x80, 0xff };
    for (const Bytes& h : headers) {
        for (std::size_t i = 0; i < h.size(); i++) {
            for (std::uint8_t v : values) {
                Bytes copy = h;
                copy[i] = v;
                const ProxyResult r = decode_proxy_header(copy);
                if (r.status == Status::error)
                    REQUIRE(std::string(proxy_error_string(r.error)) != "unknown");
                if (r.status == Status::done)
                    REQUIRE(r.info.header_len <= copy.size());
            }
        }
    }
}
