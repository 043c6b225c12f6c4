// status.h: `sniproxyctl status ADDR:PORT|unix:PATH [--json]`, which scrapes a running
// sniproxyd's metrics endpoint and prints what it says.
#pragma once

#include <string>
#include <string_view>

namespace sniproxy {

// GET /metrics from `target` ("127.0.0.1:9100", "[::1]:9100", "localhost:9100" or
// "unix:/run/sniproxyd/metrics.sock") within timeout_ms; *body is the answer's body.
// False with *err on a connection failure, a timeout, a status other than 200, or an
// answer over 64 MiB.
bool fetch_metrics(std::string_view target, int timeout_ms, std::string* body, std::string* err);

// The command, with argv[0] == "status". Exit 0, 1 (could not fetch or parse), 2 (usage).
int cmd_status(int argc, char* argv[]);

} // namespace sniproxy
