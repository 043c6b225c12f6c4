// worker.h: the entry point of a worker process (the parent execs itself with -W).
#pragma once

#include "options.h"

namespace sniproxy {

// Jails and sandboxes this process, then serves connections handed over by the parent
// until told to drain (or the parent goes away). Returns the process exit status.
int worker_main(const Options& options);

} // namespace sniproxy
