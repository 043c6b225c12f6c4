// landlock.h: Landlock rulesets for workers and the parent. Landlock bounds what seccomp
// cannot see: which TCP ports a socket may reach (seccomp cannot read a sockaddr), abstract
// Unix sockets and signals outside the process's domain, and which files may be opened.
// What a given kernel ABI supports is decided by the pure plan_* functions; apply_* do the
// system calls.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sniproxy {

// What one ruleset handles (denies unless a rule allows) and its rules.
struct LandlockPathRule {
    std::string path; // opened with O_PATH when the ruleset is applied; a missing path is skipped
    std::uint64_t access = 0; // LANDLOCK_ACCESS_FS_* (masked to what the ruleset handles)
};

struct LandlockPlan {
    int abi = 0; // 0: Landlock is not available, nothing is applied
    std::uint64_t handled_fs = 0;
    std::uint64_t handled_net = 0; // ABI >= 4: TCP bind and connect, with no rule: no TCP at all
    std::uint64_t scoped = 0; // ABI >= 6: abstract Unix sockets and signals
    std::vector<LandlockPathRule> rules;
};

// The highest ABI the running kernel supports, 0 if Landlock is missing or disabled.
// The red-team test build honours SNIPROXYD_REDTEAM_LANDLOCK_ABI to simulate older kernels.
int landlock_abi();

// Every filesystem right an ABI knows (all of them are handled: what is not granted is denied).
std::uint64_t landlock_fs_rights(int abi);

// Workers, after chroot: read files and list directories under `hosts_dir` (their root, or
// the hosts directory when not started as root), nothing written or executed anywhere, no
// TCP, no abstract Unix socket or signal outside their own domain.
LandlockPlan plan_worker_landlock(int abi, const std::string& hosts_dir);

struct ParentPaths {
    std::string executable; // the running binary: its directory may be exec'd (workers, SIGUSR2)
    std::string hosts_dir;
    std::string pidfile; // may be empty
    std::string metrics_socket; // -o metrics=unix:PATH, removed at exit; may be empty
};
// The parent: execute and read its binary's directory and the shared libraries, read the
// hosts directory's parent (so a swapped hosts symlink stays readable), write the pid file,
// read and write /dev/null, read the few /etc files a new parent reads on SIGUSR2; no TCP bind
// or connect (its listeners are bound already); abstract Unix sockets scoped, signals not.
LandlockPlan plan_parent_landlock(int abi, const ParentPaths& paths);

// "net, scope, fs" (the protections a plan puts in force), or "" when it has none.
std::string landlock_protections(const LandlockPlan& plan);

// Creates the ruleset, adds the rules and restricts the calling thread (no_new_privs must be
// set). A plan with abi 0 does nothing and succeeds.
bool apply_landlock(const LandlockPlan& plan, std::string* err);

} // namespace sniproxy
