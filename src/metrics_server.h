// metrics_server.h: the process that answers `GET /metrics`. The parent binds the metrics
// listener and starts this process with it and the metrics region; it runs jailed (see
// metrics_seccomp.h), so the privileged parent never parses an HTTP request.
//
// A slow or hostile scraper costs a bounded amount: at most max_clients at once (more are
// closed as soon as they are accepted), a request must arrive whole within
// request_timeout_ms (else 408), the request is at most 8 KiB of line and 8 KiB of header
// (else 414/431), and every connection is closed after one answer.
#pragma once

#include "metrics_store.h"

#include <cstddef>
#include <functional>

namespace sniproxy {

struct MetricsServerOptions {
    int parent_fd = -1; // when it reads EOF (the parent has gone), the server returns 0
    std::size_t max_clients = 16;
    int request_timeout_ms = 5000; // from accept to the blank line ending the request
    int answer_timeout_ms = 10000; // for the scraper to read the answer
    // Called after the event loop and listener are set up and before the first accept:
    // where the process enters its sandbox (sandbox_metrics_server). False: return 1.
    std::function<bool()> enter_sandbox;
};

// Serves until parent_fd reports EOF (returns 0) or something fails at set-up (logs why,
// returns 1). listen_fd must be a listening stream socket (TCP or Unix); it is made
// non-blocking here. Never returns on its own otherwise.
int run_metrics_server(
    int listen_fd, const MetricsStore& store, const MetricsServerOptions& options);

} // namespace sniproxy
