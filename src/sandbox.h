// sandbox.h: privilege separation. Confines a worker (chroot into the hosts directory,
// unprivileged uid/gid, no capabilities, no_new_privs, seccomp allowlist) and shrinks the
// parent's capabilities to the few it needs to start and stop workers.
//
// A worker calls, in this order: jail_worker (only when started as root; otherwise it just
// chdirs into the hosts directory), set_no_new_privs, restrict_worker, load_worker_seccomp.
// Every function returns false and fills `error` with one line naming the failed step;
// none of them exits.
#pragma once

#include "identity.h"

#include <sys/types.h>

#include <string>

namespace sniproxy {

// As root: chdir(hosts_dir), chroot("."), chdir("/"), groups = {gid}, setresgid,
// setresuid, clear every capability set (effective, permitted, inheritable, ambient), then
// verifies that setuid(0), setgid(0) and chroot("/") fail. Refuses uid 0 and gid 0.
// Needs no /proc (none exists inside the chroot).
// `who.uid` and `who.gid` must be set: jailing as root is refused.
// hosts_fd, when given, is the directory already opened (O_PATH) by the parent for this
// generation; hosts_dir then only names it in messages.
bool jail_worker(const std::string& hosts_dir, const Identity& who, std::string& error,
    int hosts_fd = -1);

// prctl(PR_SET_NO_NEW_PRIVS), verified with PR_GET_NO_NEW_PRIVS.
bool set_no_new_privs(std::string& error);

// After no_new_privs, before seccomp: RLIMIT_NPROC and RLIMIT_FSIZE to 0 (no fork, no file
// growth even if both filters failed) and the worker's Landlock ruleset on the current
// directory (the hosts directory; see landlock.h). Missing Landlock is not an error.
bool restrict_worker(std::string* err);

// The parent's own confinement, once its listeners are bound, its capabilities dropped and
// its pid file written: the parent's Landlock ruleset (landlock.h) and seccomp allowlist
// (seccomp_filter.h). Logs which protections are in force, for the parent and the workers
// ("landlock: ABI 7: net, scope, fs"). Needs no_new_privs (parent_drop_capabilities sets it).
// metrics_socket: the -o metrics=unix:PATH socket, which it removes at exit ("" if none).
bool confine_parent(const std::string& executable, const std::string& hosts_dir,
    const std::string& pidfile, const std::string& metrics_socket, std::string* err);

// Loads the worker's syscall allowlist (seccomp_filter.cc); anything else kills the process.
// Requires no_new_privs to be set already (set_no_new_privs).
bool load_worker_seccomp(std::string& error);

// For the root parent, after binding: keeps only CAP_SETUID, CAP_SETGID, CAP_SYS_CHROOT and
// CAP_KILL in effective+permitted, clears inheritable and ambient, drops every other
// capability from the bounding set (so exec'd workers cannot regain them) and sets
// no_new_privs. `kept` receives the result as cap_to_text prints it, e.g.
// "cap_kill,cap_setgid,cap_setuid,cap_sys_chroot=ep". Needs CAP_SETPCAP (root) to shrink
// the bounding set: a parent started as non-root should not call it.
bool parent_drop_capabilities(std::string& kept, std::string& error);

} // namespace sniproxy
