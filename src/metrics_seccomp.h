// metrics_seccomp.h: the sandbox of the metrics server, the process that answers scrapers.
// It is jailed like a worker (same chroot, user and capability drop from sandbox.h) but
// needs a different syscall allowlist: it accepts on the metrics listener and never
// connects anywhere, receives no descriptors and opens no file.
#pragma once

#include "sandbox.h"

#include "identity.h"

#include <string>

namespace sniproxy {

// The metrics server's libseccomp allowlist; anything else kills the process. Requires
// no_new_privs (set_no_new_privs). Returns false and fills *err on failure; never exits.
bool load_metrics_seccomp(std::string* err);

// The whole sequence, in order: jail_worker(hosts_dir, *who) when who is given (started as
// root), set_no_new_privs, load_metrics_seccomp. For MetricsServerOptions::enter_sandbox.
bool sandbox_metrics_server(const std::string& hosts_dir, const Identity* who, std::string* err);

} // namespace sniproxy
