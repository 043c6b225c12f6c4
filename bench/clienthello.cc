// ClientHello construction for bench/loadgen: a well-formed hello shaped like a
// modern browser's, so the proxies parse the same amount of data they would in production.
#include "clienthello.h"

#include <cstdlib>

namespace {

void put8(std::vector<uint8_t>& b, unsigned v) { b.push_back(static_cast<uint8_t>(v)); }
void put16(std::vector<uint8_t>& b, unsigned v) { put8(b, v >> 8); put8(b, v); }
void put24(std::vector<uint8_t>& b, unsigned v) { put8(b, v >> 16); put16(b, v & 0xffff); }

// Overwrites a 16-bit length at `at` once the body after it is known.
void patch16(std::vector<uint8_t>& b, std::size_t at, std::size_t v)
{
    b[at] = static_cast<uint8_t>(v >> 8);
    b[at + 1] = static_cast<uint8_t>(v);
}

void random_bytes(std::vector<uint8_t>& b, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i)
        put8(b, static_cast<unsigned>(std::rand()) & 0xff);
}

// Appends extension `type` whose body is produced by `body`.
template <typename F>
void extension(std::vector<uint8_t>& b, unsigned type, F body)
{
    put16(b, type);
    const std::size_t len_at = b.size();
    put16(b, 0);
    body();
    patch16(b, len_at, b.size() - len_at - 2);
}

} // namespace

std::vector<uint8_t> build_client_hello(const std::string& sni, std::size_t target_len)
{
    std::vector<uint8_t> b;
    b.reserve(target_len + 64);
    put8(b, 22);          // handshake record
    put16(b, 0x0301);     // legacy record version, as browsers send it
    put16(b, 0);          // record length, patched below
    put8(b, 1);           // client_hello
    put24(b, 0);          // handshake length, patched below
    put16(b, 0x0303);     // legacy_version TLS 1.2
    random_bytes(b, 32);  // random
    put8(b, 32);          // legacy_session_id (middlebox compatibility mode)
    random_bytes(b, 32);

    static const unsigned suites[] = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c,
        0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
    put16(b, sizeof suites / sizeof suites[0] * 2);
    for (unsigned s : suites)
        put16(b, s);
    put8(b, 1);           // compression methods: null only
    put8(b, 0);

    const std::size_t ext_len_at = b.size();
    put16(b, 0);
    extension(b, 0x0000, [&] {   // server_name
        put16(b, sni.size() + 3);
        put8(b, 0);              // host_name
        put16(b, sni.size());
        b.insert(b.end(), sni.begin(), sni.end());
    });
    extension(b, 0x0017, [] {}); // extended_master_secret
    extension(b, 0xff01, [&] { put8(b, 0); }); // renegotiation_info
    extension(b, 0x000a, [&] {   // supported_groups
        put16(b, 8);
        put16(b, 0x001d); put16(b, 0x0017); put16(b, 0x0018); put16(b, 0x0019);
    });
    extension(b, 0x000b, [&] { put8(b, 1); put8(b, 0); }); // ec_point_formats
    extension(b, 0x0023, [] {}); // session_ticket
    extension(b, 0x0010, [&] {   // ALPN: h2, http/1.1
        put16(b, 12);
        put8(b, 2); b.push_back('h'); b.push_back('2');
        put8(b, 8);
        for (char c : std::string("http/1.1"))
            b.push_back(static_cast<uint8_t>(c));
    });
    extension(b, 0x0005, [&] {   // status_request
        put8(b, 1); put16(b, 0); put16(b, 0);
    });
    extension(b, 0x000d, [&] {   // signature_algorithms
        static const unsigned algs[] = {0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501,
            0x0806, 0x0601};
        put16(b, sizeof algs / sizeof algs[0] * 2);
        for (unsigned a : algs)
            put16(b, a);
    });
    extension(b, 0x0012, [] {}); // signed_certificate_timestamp
    extension(b, 0x0033, [&] {   // key_share: one x25519 share
        put16(b, 36);
        put16(b, 0x001d);
        put16(b, 32);
        random_bytes(b, 32);
    });
    extension(b, 0x002d, [&] { put8(b, 1); put8(b, 1); }); // psk_key_exchange_modes
    extension(b, 0x002b, [&] {   // supported_versions: TLS 1.3, 1.2
        put8(b, 4); put16(b, 0x0304); put16(b, 0x0303);
    });
    // padding (RFC 7685) brings the record to the requested size, as browsers do.
    if (b.size() + 4 < target_len) {
        const std::size_t pad = target_len - b.size() - 4;
        extension(b, 0x0015, [&] { b.insert(b.end(), pad, 0); });
    }
    patch16(b, ext_len_at, b.size() - ext_len_at - 2);
    patch16(b, 3, b.size() - 5);
    const std::size_t hs = b.size() - 9;
    b[6] = static_cast<uint8_t>(hs >> 16);
    b[7] = static_cast<uint8_t>(hs >> 8);
    b[8] = static_cast<uint8_t>(hs);
    return b;
}
