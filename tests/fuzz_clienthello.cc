// fuzz_clienthello.cc: libFuzzer target. The parser must never crash, hang or read out of
// bounds, and feeding the same bytes in pieces must give the same answer as feeding them whole.
#include "clienthello.h"

#include <cstdlib>

using namespace sniproxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::span<const std::uint8_t> bytes(data, size);
    const HelloResult whole = parse_client_hello(bytes);

    // The first byte (when present) picks the piece sizes, so the fuzzer explores splits too.
    const std::size_t step = size ? 1 + data[0] % 17 : 1;
    ClientHelloParser pieces;
    for (std::size_t off = 0; off < size; off += step)
        pieces.feed(bytes.subspan(off, std::min(step, size - off)));

    if (pieces.status() != whole.status || pieces.error() != whole.error)
        std::abort();
    if (whole.status == ClientHelloParser::Status::done) {
        const HelloInfo& a = whole.info;
        const HelloInfo& b = pieces.info();
        if (a.sni != b.sni || a.alpn != b.alpn || a.ech != b.ech
            || a.supported_versions != b.supported_versions || a.cipher_suites != b.cipher_suites
            || a.extensions != b.extensions || a.signature_algorithms != b.signature_algorithms
            || a.legacy_version != b.legacy_version || whole.consumed != pieces.consumed()
            || whole.consumed > size)
            std::abort();
    }
    return 0;
}
