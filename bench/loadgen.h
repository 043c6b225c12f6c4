// Shared declarations of the benchmark load generator (bench/loadgen*.cc).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

struct Options {
    std::string mode;                 // rate, open, bulk, latency, idle
    std::string host = "127.0.0.1";   // TCP target (through a proxy) ...
    int port = 0;
    std::vector<std::string> unix_paths; // ... or Unix sockets directly (no proxy)
    std::vector<std::string> snis {"a.bench.test"};
    int concurrency = 64;
    double duration = 5;              // seconds
    double rate = 1000;               // open loop: connections started per second
    long count = 1000;                // latency: ping-pongs; idle: connections
    std::size_t payload = 64;         // bytes sent after the hello (rate, open, latency)
    int source_addrs = 1;             // bind clients to 127.0.0.1..N (ports per address are limited)
    std::size_t bulk_chunk = 64 * 1024;
};

// One ClientHello per SNI, built once.
extern std::vector<std::vector<uint8_t>> g_hellos;

// Starts a non-blocking connect for connection number `idx` (which picks the SNI,
// source address or Unix path). Returns the fd, or -1 with errno set.
int start_connect(const Options& o, uint64_t idx);

uint64_t now_ns();
void print_percentiles(std::vector<uint32_t>& us);

int run_flows(const Options& o);   // rate, open, bulk, idle (loadgen_flows.cc)
int run_latency(const Options& o); // latency (loadgen.cc)
