// ja4_test.cc: JA4 against FoxIO's reference outputs (hellos rebuilt from the lists in their
// test data), the specification's edge cases, and pinned values for our real captures.
#include "catch.h"
#include "clienthello.h"
#include "hello_builder.h"
#include "ja4.h"
#include "sandbox.h"

#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

using namespace sniproxy;
using namespace sniproxy::test;

namespace {

std::vector<std::uint16_t> hex_list(const std::string& text)
{
    std::vector<std::uint16_t> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ','))
        out.push_back(static_cast<std::uint16_t>(std::stoul(item, nullptr, 16)));
    return out;
}

Bytes u16_vector(const std::vector<std::uint16_t>& values, int prefix)
{
    Bytes b;
    if (prefix == 1)
        b.push_back(static_cast<std::uint8_t>(values.size() * 2));
    else
        put16(b, values.size() * 2);
    for (std::uint16_t v : values)
        put16(b, v);
    return b;
}

struct Spec {
    std::uint16_t legacy_version = 0x0303;
    std::vector<std::uint16_t> ciphers;
    std::vector<std::uint16_t> extensions; // types, in order; 0, 16, 13 and 43 get real data
    std::vector<std::uint16_t> sigalgs;
    std::vector<std::uint16_t> versions { 0x0304, 0x0303 };
    std::vector<std::string> alpn { "h2", "http/1.1" };
};

// A parseable ClientHello stream with exactly these lists.
Bytes build(const Spec& s)
{
    Bytes exts;
    for (std::uint16_t type : s.extensions) {
        if (type == 0)
            append(exts, sni_extension("ja4.example"));
        else if (type == 16)
            append(exts, alpn_extension(s.alpn));
        else if (type == 13)
            append(exts, extension(13, u16_vector(s.sigalgs, 2)));
        else if (type == 43)
            append(exts, extension(43, u16_vector(s.versions, 1)));
        else
            append(exts, extension(type, {}));
    }
    Bytes body { static_cast<std::uint8_t>(s.legacy_version >> 8),
        static_cast<std::uint8_t>(s.legacy_version) };
    body.insert(body.end(), 32, 0x11);
    body.push_back(0);
    append(body, u16_vector(s.ciphers, 2));
    body.push_back(1);
    body.push_back(0);
    put16(body, exts.size());
    append(body, exts);
    return records(handshake(body));
}

HelloInfo parse(const Bytes& stream)
{
    const HelloResult r = parse_client_hello(stream);
    REQUIRE(r.status == ClientHelloParser::Status::done);
    return r.info;
}

// Puts GREASE where Chrome does: first cipher, first and last extension, sigalgs, versions.
Spec with_grease(Spec s)
{
    s.ciphers.insert(s.ciphers.begin(), 0x3a3a);
    s.extensions.insert(s.extensions.begin(), 0x9a9a);
    s.extensions.push_back(0xfafa);
    if (!s.sigalgs.empty())
        s.sigalgs.insert(s.sigalgs.begin() + 1, 0x2a2a);
    s.versions.insert(s.versions.begin(), 0xeaea);
    return s;
}

struct Reference {
    const char* source; // FoxIO-LLC/ja4 python/test/testdata file and stream
    const char* ja4;
    const char* ja4_r;
    const char* ciphers; // JA4_ro: the original order
    const char* extensions;
    const char* sigalgs;
    bool tls13;
};

// From FoxIO-LLC/ja4, python/test/testdata/*.json (JA4.1, JA4_r.1 and the JA4_ro.1 lists).
const Reference references[] = {
    { "sigalg-grease.pcapng stream 0", "t13d1517h2_8daaf6152771_cb7bf5808d99",
        "t13d1517h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,ca34,fe0d,ff01_0904,0905,"
        "0906,0403,0804,0401,0503,0805,0501,0806,0601",
        "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035",
        "fe0d,0010,0017,0033,44cd,ff01,000a,000d,0023,002b,000b,ca34,002d,0000,0005,001b,0012",
        "0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601", true },
    { "latest.pcapng stream 1", "t13d1516h2_8daaf6152771_e5627efa2ab1",
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,"
        "0503,0805,0501,0806,0601",
        "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035",
        "0023,ff01,0000,001b,0012,4469,002d,002b,000d,0010,0033,000a,0005,0017,000b,0015",
        "0403,0804,0401,0503,0805,0501,0806,0601", true },
    { "latest.pcapng stream 3 (TLS 1.2, no ALPN)", "t12d190800_d83cc789557e_7af1ed941c26",
        "t12d190800_000a,002f,0035,003c,003d,009c,009d,c009,c00a,c013,c014,c023,c024,c027,c028,"
        "c02b,c02c,c02f,c030_0005,000a,000b,000d,0017,0023,ff01_0804,0805,0806,0401,0501,0201,"
        "0403,0503,0203,0202,0601,0603",
        "c02c,c02b,c030,c02f,c024,c023,c028,c027,c00a,c009,c014,c013,009d,009c,003d,003c,0035,"
        "002f,000a",
        "0000,0005,000a,000b,000d,0023,0017,ff01",
        "0804,0805,0806,0401,0501,0201,0403,0503,0203,0202,0601,0603", false },
    { "ipv6.pcapng stream 0 (46 ciphers)", "t12d4605h2_85626a9a5f7f_aaf95bb78ec9",
        "t12d4605h2_0004,0005,000a,0016,002f,0033,0035,0039,003c,003d,0041,0045,0067,006b,0081,"
        "0084,0088,009c,009d,009e,009f,00ba,00be,00c0,00c4,00ff,c007,c008,c009,c00a,c011,c012,"
        "c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9,ccaa,ff85_000a,000b,000d_"
        "0601,0603,efef,0501,0503,0401,0403,eeee,eded,0301,0303,0201,0203",
        "c030,c02c,c028,c024,c014,c00a,009f,006b,0039,cca9,cca8,ccaa,ff85,00c4,0088,0081,009d,"
        "003d,0035,00c0,0084,c02f,c02b,c027,c023,c013,c009,009e,0067,0033,00be,0045,009c,003c,"
        "002f,00ba,0041,c011,c007,0005,0004,c012,c008,0016,000a,00ff",
        "0000,000b,000a,000d,0010",
        "0601,0603,efef,0501,0503,0401,0403,eeee,eded,0301,0303,0201,0203", false },
    { "badcurveball.pcap stream 0", "t13d1615h2_46e7e9700bed_45f260be83e2",
        "t13d1615h2_000a,002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,"
        "cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,ff01_0403,0804,0401,"
        "0503,0805,0501,0806,0601,0201",
        "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035,000a",
        "0000,0017,ff01,000a,000b,0023,0010,0005,000d,0012,0033,002d,002b,001b,0015",
        "0403,0804,0401,0503,0805,0501,0806,0601,0201", true },
};

Spec spec_of(const Reference& ref)
{
    Spec s;
    s.ciphers = hex_list(ref.ciphers);
    s.extensions = hex_list(ref.extensions);
    s.sigalgs = hex_list(ref.sigalgs);
    if (!ref.tls13)
        s.versions = {};
    return s;
}

const char* const captures[][2] = {
    // Values checked independently (a separate Python computation from the raw bytes); the
    // Chromium one is also FoxIO's own for Chrome (sigalg-grease.pcapng above).
    { "chromium-156.bin", "t13d1517h2_8daaf6152771_cb7bf5808d99" },
    { "firefox-esr.bin", "t13d1517h2_8daaf6152771_cb7bf5808d99" },
    { "curl-7.88.bin", "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6" },
    { "python-3.11.bin", "t13d181100_85036bcba153_d41ae481755e" },
    { "openssl-3.0-tls13.bin", "t13d311000_e8f1e7e78f70_1f22a2ca17c4" },
    { "openssl-3.0-tls12-only.bin", "t12d280700_d943125447b4_e7e480e5a997" },
    { "gnutls-3.7.bin", "t13d291300_723694b0fccc_2cc26d266019" },
    { "go-1.19.bin", "t13d1910h2_9dc949149365_97f8aa674fd9" },
};

Bytes capture(const std::string& name)
{
    return read_file(std::string(TEST_DATA_DIR) + "/" + name);
}

} // namespace

TEST_CASE("FoxIO's reference fingerprints, from hellos with their lists")
{
    for (const Reference& ref : references) {
        INFO(ref.source);
        const Spec spec = spec_of(ref);
        if (!ref.tls13)
            REQUIRE(std::find(spec.extensions.begin(), spec.extensions.end(), 43)
                == spec.extensions.end());
        const HelloInfo hello = parse(build(spec));
        CHECK(ja4_raw(hello) == ref.ja4_r);
        CHECK(ja4_fingerprint(hello) == ref.ja4);
        // GREASE anywhere changes nothing: not the counts, not the lists, not the version.
        const HelloInfo greased = parse(build(with_grease(spec)));
        CHECK(ja4_fingerprint(greased) == ref.ja4);
    }
}

TEST_CASE("the specification's own example")
{
    // technical_details/JA4.md: the same lists with the extension order shuffled.
    Spec s = spec_of(references[1]);
    std::reverse(s.extensions.begin(), s.extensions.end());
    std::reverse(s.ciphers.begin(), s.ciphers.end());
    CHECK(ja4_fingerprint(parse(build(s))) == "t13d1516h2_8daaf6152771_e5627efa2ab1");
    // Without signature algorithms the list is hashed without the underscore (JA4.md's
    // "6d807ffa2a79" for these 14 extensions).
    s.sigalgs = {};
    CHECK(ja4_fingerprint(parse(build(s))).substr(24) == "6d807ffa2a79");
}

TEST_CASE("no SNI is 'i', and SNI and ALPN are counted but not hashed")
{
    Spec s = spec_of(references[1]);
    const std::string with_sni = ja4_fingerprint(parse(build(s)));
    std::erase(s.extensions, 0);
    const std::string without = ja4_fingerprint(parse(build(s)));
    CHECK(without.substr(0, 10) == "t13i1515h2");
    CHECK(without.substr(10) == with_sni.substr(10));
    std::erase(s.extensions, 16);
    const std::string neither = ja4_fingerprint(parse(build(s)));
    CHECK(neither.substr(0, 10) == "t13i151400");
    CHECK(neither.substr(10) == with_sni.substr(10));
}

TEST_CASE("the ALPN characters, ASCII or not")
{
    auto code = [](std::vector<std::string> alpn) {
        Spec s = spec_of(references[1]);
        s.alpn = std::move(alpn);
        return ja4_fingerprint(parse(build(s))).substr(8, 2);
    };
    CHECK(code({ "h2" }) == "h2");
    CHECK(code({ "http/1.1", "h2" }) == "h1");
    CHECK(code({ "acme-tls/1" }) == "a1");
    CHECK(code({ "x" }) == "xx");
    // JA4.md's examples: a first or last byte that is not alphanumeric gives the first and
    // last hex digits of the whole value.
    CHECK(code({ "\xab" }) == "ab");
    CHECK(code({ "\xab\xcd" }) == "ad");
    CHECK(code({ "0\xab" }) == "3b");
    CHECK(code({ "01\xab\xcd" }) == "3d");
    CHECK(code({ "0\xab\xcd"
                 "1" })
        == "01");
    CHECK(code({ "h2/" }) == "6f");
}

TEST_CASE("ECH is an ordinary extension, and the version comes from supported_versions")
{
    Spec s = spec_of(references[1]);
    const std::string plain = ja4_fingerprint(parse(build(s)));
    s.extensions.push_back(0xfe0d);
    const HelloInfo ech = parse(build(s));
    CHECK(ech.ech);
    const std::string with_ech = ja4_fingerprint(ech);
    CHECK(with_ech.substr(0, 10) == "t13d1517h2");
    CHECK(with_ech.substr(24) != plain.substr(24));
    CHECK(ja4_raw(ech).find(",fe0d,") != std::string::npos);

    s = spec_of(references[1]);
    s.versions = { 0x0303, 0x0302 };
    CHECK(ja4_fingerprint(parse(build(s))).substr(0, 3) == "t12");
    s.versions = { 0x7a7a };
    CHECK(ja4_fingerprint(parse(build(s))).substr(0, 3) == "t00");
    s.legacy_version = 0x0301;
    std::erase(s.extensions, 43);
    CHECK(ja4_fingerprint(parse(build(s))).substr(0, 3) == "t10");
}

TEST_CASE("counts stop at 99")
{
    Spec s = spec_of(references[1]);
    for (std::uint16_t c = 0x0100; c < 0x0100 + 120; c++)
        s.ciphers.push_back(c);
    for (std::uint16_t e = 0x7000; e < 0x7000 + 100; e++)
        s.extensions.push_back(e);
    CHECK(ja4_fingerprint(parse(build(s))).substr(0, 10) == "t13d9999h2");
}

TEST_CASE("a hello without extensions")
{
    const HelloInfo bare = parse(records(handshake(hello_body({}, false))));
    CHECK(ja4_fingerprint(bare) == "t12i010000_0f2cb44170f4_000000000000");
    CHECK(ja4_raw(bare) == "t12i010000_1301_");
}

TEST_CASE("pinned fingerprints of our real captures, whole and in pieces")
{
    for (const auto& [name, expected] : captures) {
        INFO(name);
        const Bytes stream = capture(name);
        CHECK(ja4_fingerprint(parse(stream)) == expected);
        ClientHelloParser pieces;
        for (std::size_t off = 0; off < stream.size(); off += 7)
            pieces.feed(
                std::span(stream).subspan(off, std::min<std::size_t>(7, stream.size() - off)));
        REQUIRE(pieces.status() == ClientHelloParser::Status::done);
        CHECK(ja4_fingerprint(pieces.info()) == expected);
    }
}

TEST_CASE("after prepare_ja4, fingerprints work inside the worker's seccomp filter")
{
    std::string err;
    REQUIRE(prepare_ja4(&err));
    const HelloInfo hello = parse(capture("curl-7.88.bin"));
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::string error;
        if (!set_no_new_privs(error) || !load_worker_seccomp(error))
            _exit(2);
        _exit(ja4_fingerprint(hello) == captures[2][1] ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
