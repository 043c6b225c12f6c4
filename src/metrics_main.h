// metrics_main.h: the entry point of the metrics server process (the parent execs itself
// with -W and -S; see metrics_process.h).
#pragma once

#include "options.h"

namespace sniproxy {

// Maps the region read-only, jails itself (metrics_seccomp.h) and serves scrapes until the
// parent closes the channel. Returns the process exit status.
int metrics_server_main(const Options& options);

} // namespace sniproxy
