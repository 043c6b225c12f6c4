// fuzz_proxy_accept.cc: libFuzzer target for the PROXY v1/v2 decoder. It must never crash,
// hang or read out of bounds, never claim more header than it was given, and feeding the
// same bytes in pieces must give the same answer as feeding them whole.
#include "proxy_accept.h"

#include <cstdlib>
#include <cstring>

using namespace sniproxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::span<const std::uint8_t> bytes(data, size);
    const ProxyResult whole = decode_proxy_header(bytes);

    // The last byte (when present) picks the piece sizes: the first belongs to the header.
    const std::size_t step = size ? 1 + data[size - 1] % 23 : 1;
    ProxyHeaderDecoder pieces;
    for (std::size_t off = 0; off < size; off += step)
        pieces.feed(bytes.subspan(off, std::min(step, size - off)));

    if (pieces.status() != whole.status || pieces.error() != whole.error)
        std::abort();
    if (whole.status == ProxyHeaderDecoder::Status::done) {
        const ProxyInfo& a = whole.info;
        const ProxyInfo& b = pieces.info();
        if (a.header_len != b.header_len || a.header_len > size || a.header_len == 0
            || a.header_len > proxy_v2_max_header || a.version != b.version || a.local != b.local
            || a.has_addresses != b.has_addresses
            || std::memcmp(&a.source, &b.source, sizeof a.source) != 0
            || std::memcmp(&a.destination, &b.destination, sizeof a.destination) != 0)
            std::abort();
        // Whatever follows the header does not change the header's decoding.
        if (decode_proxy_header(bytes.first(a.header_len)).info.header_len != a.header_len)
            std::abort();
    }
    return 0;
}
