// clienthello_test.cc: the ClientHello parser against real captures, in every record and
// read split, and against crafted hellos for each error it can report.
#include "catch.h"
#include "clienthello.h"
#include "hello_builder.h"

#include <random>

using namespace sniproxy;
using namespace sniproxy::test;
using Status = ClientHelloParser::Status;

namespace {

const char* const captures[] = {
    "chromium-156.bin",
    "firefox-esr.bin",
    "curl-7.88.bin",
    "python-3.11.bin",
    "openssl-3.0-tls13.bin",
    "openssl-3.0-tls12-only.bin",
    "gnutls-3.7.bin",
    "go-1.19.bin",
};

Bytes capture(const std::string& name)
{
    return read_file(std::string(TEST_DATA_DIR) + "/" + name);
}

// Feeds `stream` in the given chunk sizes (cycled) and returns the final result.
HelloResult feed_in_pieces(const Bytes& stream, const std::vector<std::size_t>& sizes)
{
    ClientHelloParser parser;
    std::size_t off = 0;
    for (std::size_t i = 0; off < stream.size() && parser.status() == Status::need_more; i++) {
        const std::size_t n = std::min(sizes[i % sizes.size()], stream.size() - off);
        parser.feed(std::span(stream).subspan(off, n));
        off += n;
    }
    return { parser.status(), parser.error(), parser.info(), parser.consumed() };
}

HelloError error_of(const Bytes& stream)
{
    return parse_client_hello(stream).error;
}

void same_facts(const HelloInfo& a, const HelloInfo& b)
{
    CHECK(a.has_sni == b.has_sni);
    CHECK(a.sni == b.sni);
    CHECK(a.alpn == b.alpn);
    CHECK(a.supported_versions == b.supported_versions);
    CHECK(a.ech == b.ech);
}

} // namespace

TEST_CASE("every real capture parses whole")
{
    for (const char* name : captures) {
        INFO(name);
        const Bytes stream = capture(name);
        REQUIRE(stream.size() > 100);
        const HelloResult r = parse_client_hello(stream);
        REQUIRE(r.status == Status::done);
        CHECK(r.info.has_sni);
        CHECK(r.info.sni == "capture.example.test");
        CHECK(r.consumed == stream.size());
    }
}

TEST_CASE("facts specific to each client")
{
    const HelloResult chromium = parse_client_hello(capture("chromium-156.bin"));
    CHECK(chromium.info.ech);
    CHECK(chromium.info.alpn == std::vector<std::string> { "h2", "http/1.1" });
    const HelloResult firefox = parse_client_hello(capture("firefox-esr.bin"));
    CHECK(firefox.info.ech);
    const HelloResult go = parse_client_hello(capture("go-1.19.bin"));
    CHECK(go.info.alpn == std::vector<std::string> { "h2", "http/1.1" });
    CHECK(!go.info.ech);
    const HelloResult tls12 = parse_client_hello(capture("openssl-3.0-tls12-only.bin"));
    CHECK(tls12.info.supported_versions.empty());
    const HelloResult tls13 = parse_client_hello(capture("openssl-3.0-tls13.bin"));
    CHECK(std::find(
              tls13.info.supported_versions.begin(), tls13.info.supported_versions.end(), 0x0304)
        != tls13.info.supported_versions.end());
}

TEST_CASE("captures re-framed into records of every size")
{
    for (const char* name : captures) {
        INFO(name);
        const Bytes stream = capture(name);
        const HelloInfo whole = parse_client_hello(stream).info;
        const Bytes message = unframe(stream);
        for (std::size_t fragment = 1; fragment <= message.size(); fragment++) {
            const Bytes framed = records(message, fragment);
            const HelloResult r = parse_client_hello(framed);
            INFO("fragment " << fragment);
            REQUIRE(r.status == Status::done);
            REQUIRE(r.consumed == framed.size());
            REQUIRE(r.info.sni == whole.sni);
        }
    }
}

TEST_CASE("captures fed in every read size and every two-piece split")
{
    for (const char* name : captures) {
        INFO(name);
        const Bytes stream = capture(name);
        const HelloInfo whole = parse_client_hello(stream).info;
        for (std::size_t chunk = 1; chunk <= stream.size(); chunk++) {
            const HelloResult r = feed_in_pieces(stream, { chunk });
            REQUIRE(r.status == Status::done);
            REQUIRE(r.info.sni == whole.sni);
        }
        for (std::size_t cut = 1; cut < stream.size(); cut++) {
            const HelloResult r = feed_in_pieces(stream, { cut, stream.size() });
            REQUIRE(r.status == Status::done);
            same_facts(r.info, whole);
        }
    }
}

TEST_CASE("1-byte records read in random pieces, with trailing application data")
{
    std::mt19937 rng(42);
    for (const char* name : captures) {
        INFO(name);
        const Bytes message = unframe(capture(name));
        Bytes stream = records(message, 1);
        const std::size_t hello_len = stream.size();
        append(stream, records(Bytes(100, 0x55), 100, 23)); // early data after the hello
        for (int round = 0; round < 20; round++) {
            std::vector<std::size_t> sizes;
            for (int i = 0; i < 50; i++)
                sizes.push_back(1 + rng() % 700);
            const HelloResult r = feed_in_pieces(stream, sizes);
            REQUIRE(r.status == Status::done);
            CHECK(r.consumed == hello_len);
            CHECK(r.info.sni == "capture.example.test");
        }
    }
}

TEST_CASE("every strict prefix of a hello needs more")
{
    const Bytes stream = capture("curl-7.88.bin");
    for (std::size_t len = 0; len < stream.size(); len++)
        REQUIRE(parse_client_hello(std::span(stream).first(len)).status == Status::need_more);
}

TEST_CASE("hellos without SNI, with other name types, and without extensions")
{
    const HelloResult none = parse_client_hello(records(handshake(hello_body({}))));
    REQUIRE(none.status == Status::done);
    CHECK(!none.info.has_sni);

    const HelloResult no_ext = parse_client_hello(records(handshake(hello_body({}, false))));
    REQUIRE(no_ext.status == Status::done);
    CHECK(!no_ext.info.has_sni);

    // An entry of name type 7 first, then the host_name: the host_name is used.
    Bytes list { 7, 0, 3, 'a', 'b', 'c', 0, 0, 5, 'x', '.', 'c', 'o', 'm' };
    Bytes data;
    put16(data, list.size());
    append(data, list);
    const HelloResult other
        = parse_client_hello(records(handshake(hello_body(extension(0, data)))));
    REQUIRE(other.status == Status::done);
    CHECK(other.info.sni == "x.com");
}

TEST_CASE("not TLS at all is refused at the first byte, without an alert")
{
    const std::string http = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    ClientHelloParser parser;
    CHECK(parser.feed(std::span(reinterpret_cast<const std::uint8_t*>(http.data()), 1))
        == Status::error);
    CHECK(parser.error() == HelloError::not_tls);
    CHECK(parser.alert() == Alert::none);
    CHECK(error_of(Bytes { 0x16, 0x00, 0x01 }) == HelloError::bad_record_version);
    CHECK(error_of(Bytes { 0x17, 0x47 }) == HelloError::not_tls);
}

TEST_CASE("SSLv2-compatible hello")
{
    const Bytes v2 { 0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15 };
    CHECK(error_of(v2) == HelloError::sslv2_hello);
    CHECK(parse_client_hello(Bytes { 0x80, 0x2e }).status == Status::need_more);
}

TEST_CASE("record-layer errors and their alerts")
{
    const Bytes hello = handshake(hello_body(sni_extension("example.com")));

    // A TLS record of another type first: unexpected_message.
    CHECK(error_of(records(hello, 16384, 21)) == HelloError::not_handshake);
    CHECK(hello_error_alert(HelloError::not_handshake) == Alert::unexpected_message);

    // Zero-length handshake record.
    CHECK(error_of(Bytes { 0x16, 3, 1, 0, 0 }) == HelloError::empty_record);

    // A record longer than 2^14, refused from its header alone.
    ClientHelloParser parser;
    CHECK(parser.feed(Bytes { 0x16, 3, 1, 0x40, 0x01 }) == Status::error);
    CHECK(parser.error() == HelloError::record_too_large);
    CHECK(parser.alert() == Alert::record_overflow);

    // An alert record in the middle of a fragmented hello.
    Bytes interleaved = records(Bytes(hello.begin(), hello.begin() + 10));
    append(interleaved, records(Bytes { 2, 40 }, 16384, 21));
    CHECK(error_of(interleaved) == HelloError::interleaved_record);

    // A second record whose version is not 3.x.
    Bytes bad_second = records(Bytes(hello.begin(), hello.begin() + 10));
    append(bad_second, Bytes { 0x16, 0x02, 0x00 });
    CHECK(error_of(bad_second) == HelloError::bad_record_version);
}

TEST_CASE("handshake-layer errors")
{
    CHECK(error_of(records(handshake(hello_body({}), 2))) == HelloError::not_client_hello);
    CHECK(hello_error_alert(HelloError::not_client_hello) == Alert::unexpected_message);

    // Another handshake message after the hello in the same record.
    Bytes two = handshake(hello_body({}));
    append(two, handshake({}, 20));
    CHECK(error_of(records(two)) == HelloError::trailing_data);

    // The record says more than the hello: refused as soon as the hello ends.
    Bytes longer = records(handshake(hello_body({})));
    longer[4] += 3;
    CHECK(error_of(longer) == HelloError::trailing_data);
}

TEST_CASE("the size bound is enforced from the handshake header")
{
    // A 20000-byte hello declared in the first 4 handshake bytes: refused before the body.
    Bytes header { 1, 0x00, 0x4e, 0x20 };
    ClientHelloParser parser;
    CHECK(parser.feed(records(header)) == Status::error);
    CHECK(parser.error() == HelloError::hello_too_large);
    CHECK(parser.alert() == Alert::record_overflow);

    // A 16 KiB bound admits a 16 KiB hello split over two records.
    const Bytes big = handshake(hello_body(extension(21, Bytes(16384 - 4 - 43 - 4, 0))));
    REQUIRE(big.size() == 16384);
    CHECK(parse_client_hello(records(big, 9000)).status == Status::done);
    CHECK(parse_client_hello(records(big, 9000), 1000).error == HelloError::hello_too_large);
}

TEST_CASE("ClientHello body errors, each with its reason")
{
    auto body_error = [](const Bytes& body) { return error_of(records(handshake(body))); };

    Bytes body = hello_body({});
    CHECK(body_error(Bytes(body.begin(), body.begin() + 20)) == HelloError::truncated_body);

    Bytes long_session = hello_body({});
    long_session[34] = 33; // session id length over 32
    CHECK(body_error(long_session) == HelloError::truncated_body);

    Bytes odd_suites = hello_body({});
    odd_suites[36] = 3;
    CHECK(body_error(odd_suites) == HelloError::truncated_body);

    // Extensions block longer than what follows, and junk after it.
    Bytes ext_short = hello_body(sni_extension("a.com"));
    ext_short[41] += 1;
    CHECK(body_error(ext_short) == HelloError::bad_extensions);
    Bytes junk = hello_body(sni_extension("a.com"));
    junk.push_back(0);
    CHECK(body_error(junk) == HelloError::bad_extensions);
    // Trailing junk inside the extension block: half an extension header.
    Bytes half = sni_extension("a.com");
    half.push_back(0);
    CHECK(body_error(hello_body(half)) == HelloError::bad_extensions);

    Bytes dup = sni_extension("a.com");
    append(dup, alpn_extension({ "h2" }));
    append(dup, alpn_extension({ "h2" }));
    CHECK(body_error(hello_body(dup)) == HelloError::duplicate_extension);
    CHECK(hello_error_alert(HelloError::duplicate_extension) == Alert::illegal_parameter);

    Bytes two_sni = sni_extension("a.com");
    append(two_sni, sni_extension("b.com"));
    CHECK(body_error(hello_body(two_sni)) == HelloError::duplicate_extension);
}

TEST_CASE("server_name, ALPN and supported_versions errors")
{
    auto ext_error = [](const Bytes& ext) { return error_of(records(handshake(hello_body(ext)))); };

    CHECK(ext_error(extension(0, {})) == HelloError::bad_server_name);
    CHECK(ext_error(extension(0, { 0, 0 })) == HelloError::bad_server_name);
    CHECK(ext_error(extension(0, { 0, 3, 0, 0, 0 })) == HelloError::bad_server_name); // empty name
    CHECK(ext_error(extension(0, { 0, 4, 0, 0, 5, 'a' })) == HelloError::bad_server_name);
    CHECK(ext_error(extension(0, { 0, 8, 0, 0, 1, 'a', 0, 0, 1, 'b' }))
        == HelloError::duplicate_server_name);
    CHECK(hello_error_alert(HelloError::bad_server_name) == Alert::decode_error);

    CHECK(ext_error(extension(16, { 0, 0 })) == HelloError::bad_alpn);
    CHECK(ext_error(extension(16, { 0, 2, 0, 0 })) == HelloError::bad_alpn);
    CHECK(ext_error(extension(16, { 0, 3, 5, 'h', '2' })) == HelloError::bad_alpn);

    CHECK(ext_error(extension(43, { 3, 3, 4, 3 })) == HelloError::bad_supported_versions);
    CHECK(ext_error(extension(43, { 0 })) == HelloError::bad_supported_versions);
    CHECK(ext_error(extension(43, { 2, 3, 4, 0 })) == HelloError::bad_supported_versions);
}

TEST_CASE("a parser that has decided does not change its mind")
{
    ClientHelloParser parser;
    const Bytes good = hello_for("example.com");
    REQUIRE(parser.feed(good) == Status::done);
    CHECK(parser.feed(Bytes { 0x15, 0x15, 0x15 }) == Status::done);
    CHECK(parser.consumed() == good.size());

    ClientHelloParser bad;
    REQUIRE(bad.feed(Bytes { 'G' }) == Status::error);
    CHECK(bad.feed(good) == Status::error);
    CHECK(bad.error() == HelloError::not_tls);
}

TEST_CASE("every error has a name and every byte-flip of a capture is handled")
{
    // A cheap exhaustive pass: flip each byte of a capture to each of a few values.
    const Bytes stream = capture("openssl-3.0-tls13.bin");
    const std::uint8_t values[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
    for (std::size_t i = 0; i < stream.size(); i++) {
        for (std::uint8_t v : values) {
            Bytes copy = stream;
            copy[i] = v;
            const HelloResult r = parse_client_hello(copy);
            if (r.status == Status::error)
                REQUIRE(std::string(hello_error_string(r.error)) != "unknown");
            if (r.status == Status::done)
                REQUIRE(r.consumed <= copy.size());
        }
    }
}

TEST_CASE("the lists a fingerprint needs, in the client's order, GREASE kept")
{
    const HelloResult chromium = parse_client_hello(capture("chromium-156.bin"));
    REQUIRE(chromium.status == Status::done);
    const HelloInfo& c = chromium.info;
    REQUIRE(c.cipher_suites.size() == 16);
    CHECK((c.cipher_suites[0] & 0x0f0f) == 0x0a0a); // Chrome leads with a GREASE suite
    CHECK(c.cipher_suites[1] == 0x1301);
    REQUIRE(c.extensions.size() == 19); // 17 and a GREASE type first and last
    CHECK(c.extensions[0] == 0x6a6a);
    CHECK(c.extensions[1] == 0xfe0d);
    CHECK(c.extensions[18] == 0x1a1a);
    REQUIRE(c.signature_algorithms.size() == 12);
    CHECK(c.signature_algorithms[0] == 0x9a9a);
    CHECK(c.signature_algorithms[1] == 0x0904);

    const HelloInfo go = parse_client_hello(capture("go-1.19.bin")).info;
    CHECK(go.extensions
        == std::vector<std::uint16_t> { 0, 5, 10, 11, 13, 0xff01, 16, 18, 43, 51 });
    CHECK(go.signature_algorithms.front() == 0x0804);

    Bytes exts = sni_extension("a.com");
    append(exts, extension(13, { 0, 4, 0x04, 0x03, 0x08, 0x04 }));
    append(exts, extension(0x1234, { 1, 2, 3 }));
    const HelloInfo built = parse_client_hello(records(handshake(hello_body(exts)))).info;
    CHECK(built.cipher_suites == std::vector<std::uint16_t> { 0x1301 });
    CHECK(built.extensions == std::vector<std::uint16_t> { 0, 13, 0x1234 });
    CHECK(built.signature_algorithms == std::vector<std::uint16_t> { 0x0403, 0x0804 });
}

TEST_CASE("a malformed signature_algorithms is not ours to refuse")
{
    // Routed as before (the backend answers it); the list is just left empty.
    for (const Bytes& data : { Bytes { 0, 3, 4, 3, 8 }, Bytes { 0, 4, 4, 3 }, Bytes {} }) {
        Bytes exts = sni_extension("a.com");
        append(exts, extension(13, data));
        const HelloResult r = parse_client_hello(records(handshake(hello_body(exts))));
        REQUIRE(r.status == Status::done);
        CHECK(r.info.sni == "a.com");
        CHECK(r.info.signature_algorithms.empty());
        CHECK(r.info.extensions == std::vector<std::uint16_t> { 0, 13 });
    }
}
