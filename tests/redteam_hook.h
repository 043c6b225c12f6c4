// redteam_hook.h: hostile code for the red-team build only (tests/sniproxyd-redteam, see
// Makefile.am). A worker that parses the SNI "attack-NAME.redteam" runs attack NAME inside
// its real jail instead of routing, and logs "redteam: NAME: blocked (...)" or
// "redteam: NAME: SUCCEEDED (...)"; an attack seccomp kills logs nothing (the parent sees
// SIGSYS). Never part of the shipped daemon.
#pragma once

#include <string_view>

namespace sniproxy {

// Returns false when `sni` names no attack (route as usual). `client_fd` is the handed-in
// client TCP socket.
bool redteam_attack(std::string_view sni, int client_fd);

} // namespace sniproxy
