// seccomp_filter.h: the worker's and the parent's libseccomp allowlists, kept apart from the jail
// and capability code in sandbox.cc so the list of syscalls can be read and reviewed on its own.
#pragma once

#include <string>

namespace sniproxy {

// Builds the allowlist and loads it into the calling process (every thread). The caller
// (load_worker_seccomp) has already checked that no_new_privs is set. Returns false and
// fills `error` with the failed step; never exits.
bool load_seccomp_allowlist(std::string& error);

// The parent's allowlist (see seccomp_filter.cc): anything else fails with EPERM. Loaded
// once its listeners are bound; inherited by every worker and upgraded parent it execs.
bool load_parent_seccomp(std::string* err);

} // namespace sniproxy
