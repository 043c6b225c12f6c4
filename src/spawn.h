// spawn.h: fork + exec with a chosen set of inherited descriptors. Used to start workers
// (this same binary, fresh address space) and, for a binary upgrade, a new parent.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace sniproxy {

struct SpawnRequest {
    std::string path; // the program to exec
    std::vector<std::string> args; // argv, including argv[0]
    std::vector<int> inherit; // become fds 3, 4, ... in the child; everything else closes on exec
    bool listen_fds = false; // also set LISTEN_FDS / LISTEN_PID (systemd protocol) for them
    std::vector<std::string> extra_env; // "NAME=value" added to the environment
    // Workers: /dev/null on fds 0-2 (stderr kept in the --enable-seccomp-debug build, for
    // its reports) and an environment of extra_env alone (no LD_PRELOAD, no MALLOC_*, no TZ
    // games). An upgraded parent passes false: it keeps stderr (-d) and the environment.
    bool isolate = true;
    // The last this many of `inherit` are not listeners: LISTEN_FDS leaves them out.
    std::size_t not_listening = 0;
};

// Fills *pid with the child's; false (with the reason) if fork failed. The child only makes
// async-signal-safe calls before exec: every signal back to its default action and unblocked
// (no libevent handler runs in it), descriptors moved; if exec fails it writes one line to
// stderr and exits 127.
bool spawn(const SpawnRequest& request, pid_t* pid, std::string* err);

// The path of the running executable, for exec'ing "the same binary" later even after the
// file was replaced (/proc/self/exe still names the running one).
std::string running_executable();

} // namespace sniproxy
