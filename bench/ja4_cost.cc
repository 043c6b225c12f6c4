// ja4_cost.cc: what the log's ja4= costs per connection: parses bench's 517-byte hello
// once, then computes its JA4 N times (a pure function), printing ns per fingerprint.
// Built against the tree's libcore.a (see bench/README); run it under callgrind for a
// count of instructions that does not depend on the machine's load.
#include "../src/ja4.h"
#include "clienthello.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv)
{
    const long n = argc > 1 ? std::atol(argv[1]) : 100000;
    std::string err;
    if (!sniproxy::prepare_ja4(&err)) {
        std::fprintf(stderr, "ja4_cost: %s\n", err.c_str());
        return 1;
    }
    const std::vector<uint8_t> hello = build_client_hello("a.bench.test");
    sniproxy::ClientHelloParser parser;
    if (parser.feed(hello) != sniproxy::ClientHelloParser::Status::done) {
        std::fprintf(stderr, "ja4_cost: the bench hello does not parse\n");
        return 1;
    }
    std::size_t sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; i++)
        sink += sniproxy::ja4_fingerprint(parser.info()).size();
    const auto t1 = std::chrono::steady_clock::now();
    std::printf("ja4=%s n=%ld ns_per_fingerprint=%.0f sink=%zu\n",
        sniproxy::ja4_fingerprint(parser.info()).c_str(), n,
        std::chrono::duration<double, std::nano>(t1 - t0).count() / n, sink);
}
