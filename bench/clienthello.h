// Builds a realistic TLS 1.3 ClientHello record for the load generator.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

// Returns one TLSPlaintext record (type 22) carrying a ClientHello for `sni`,
// padded with the padding extension (RFC 7685) to about `target_len` bytes so its
// size matches what browsers send (about 512 bytes with a 32-byte x25519 key share).
std::vector<uint8_t> build_client_hello(const std::string& sni, std::size_t target_len = 517);
