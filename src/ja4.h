// ja4.h: the JA4 TLS client fingerprint of a parsed ClientHello, exactly as FoxIO's
// specification (FoxIO-LLC/ja4, technical_details/JA4.md) defines it, for the log's ja4=.
#pragma once

#include "clienthello.h"

#include <string>

namespace sniproxy {

// Readies libcrypto's SHA-256 once: call it before the worker's seccomp filter is loaded (the
// parent before forking will do). libcrypto's default first use opens openssl.cnf, which the
// filter answers by killing the worker; ja4 initialises it without a configuration file, and
// this does that set-up (provider, digest fetch, their allocations) ahead of the first
// connection. Returns false with *err filled if libcrypto has no SHA-256.
bool prepare_ja4(std::string* err);

// "t13d1516h2_8daaf6152771_e5627efa2ab1": 't' (TLS over TCP), the TLS version, 'd' with an
// SNI extension or 'i' without, the cipher and extension counts, the first ALPN's first and
// last characters, then the truncated SHA-256 of the sorted cipher list and of the sorted
// extension list (without SNI and ALPN) followed by the signature algorithms. GREASE values
// are left out of every count and list. Returns "" only if SHA-256 is unavailable.
std::string ja4_fingerprint(const HelloInfo& hello);

// The same with the lists themselves instead of their hashes (FoxIO's "JA4_r"), for tests
// and for operators comparing against other tools.
std::string ja4_raw(const HelloInfo& hello);

} // namespace sniproxy
