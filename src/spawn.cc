// spawn.cc: fork + exec, keeping descriptor and environment handling out of the parent.
#include "config.h"

#include "spawn.h"

#include "log.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

extern char** environ;

namespace sniproxy {

namespace {
    // Writes "LISTEN_PID=<pid>" into buf without allocating (we are between fork and exec).
    void format_listen_pid(char* buf, std::size_t size, pid_t pid)
    {
        char digits[24];
        int n = 0;
        for (unsigned long v = static_cast<unsigned long>(pid); n == 0 || v > 0; v /= 10)
            digits[n++] = static_cast<char>('0' + v % 10);
        std::size_t off = 0;
        for (const char* p = "LISTEN_PID="; *p && off + 1 < size; p++)
            buf[off++] = *p;
        while (n > 0 && off + 1 < size)
            buf[off++] = digits[--n];
        buf[off] = '\0';
    }

    // The red-team test build lets its settings through to workers; nothing else does.
    bool is_redteam_setting([[maybe_unused]] const char* entry)
    {
#ifdef SNIPROXYD_REDTEAM
        return std::strncmp(entry, "SNIPROXYD_REDTEAM_", 18) == 0;
#else
        return false;
#endif
    }

    // Child side, async-signal-safe: libevent's handlers (and the parent's SIG_IGN of
    // SIGPIPE, which exec would keep) must not reach the new program.
    void reset_signals()
    {
        struct sigaction dfl { };
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                sigaction(sig, &dfl, nullptr); // fails harmlessly for the RT ones glibc keeps
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
    }

    // Child side: fds 0-2 onto /dev/null, so a worker can write nothing into the log or the
    // journal (its records go through the parent, which escapes and prefixes them).
    bool quiet_stdio(int devnull)
    {
#if defined(SECCOMP_DEBUG) || defined(WITH_SANITIZERS)
        const int last = 1; // these builds report forbidden syscalls and sanitizer findings
#else
        const int last = 2;
#endif
        for (int fd = 0; fd <= last; fd++)
            if (dup2(devnull, fd) < 0)
                return false;
        return true;
    }
} // namespace

bool spawn(const SpawnRequest& r, pid_t* child, std::string* err)
{
    // Everything the child needs is allocated here, before fork.
    std::vector<char*> argv;
    for (const std::string& a : r.args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_own = r.extra_env;
    if (r.listen_fds)
        env_own.push_back("LISTEN_FDS=" + std::to_string(r.inherit.size() - r.not_listening));
    char listen_pid[48] = "LISTEN_PID=";
    std::vector<char*> envp;
    for (char** e = environ; *e; e++) {
        if (r.isolate ? is_redteam_setting(*e) : std::strncmp(*e, "LISTEN_", 7) != 0)
            envp.push_back(*e);
    }
    for (std::string& e : env_own)
        envp.push_back(e.data());
    if (r.listen_fds)
        envp.push_back(listen_pid);
    envp.push_back(nullptr);

    const pid_t pid = fork();
    if (pid < 0) {
        *err = errno_message("fork for " + r.path, errno);
        return false;
    }
    if (pid > 0) {
        *child = pid;
        return true;
    }
    reset_signals();
    // Child. Move the inherited fds out of the way first, then into 3, 4, ...: a plain
    // dup2 loop could overwrite one that is still to be moved.
    int moved[64];
    const std::size_t n = std::min<std::size_t>(r.inherit.size(), 64);
    for (std::size_t i = 0; i < n; i++) {
        moved[i] = fcntl(r.inherit[i], F_DUPFD_CLOEXEC, 100);
        if (moved[i] < 0)
            _exit(127);
    }
    if (r.isolate) { // after the move: an inherited fd may have been 0-2
        const int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || !quiet_stdio(devnull))
            _exit(127);
    }
    for (std::size_t i = 0; i < n; i++) {
        if (dup2(moved[i], 3 + static_cast<int>(i)) < 0) // the copy is not close-on-exec
            _exit(127);
    }
    // Nothing else crosses: not a descriptor some service manager left us without
    // close-on-exec (inetd and systemd do), least of all a listening socket.
    close_range(3 + static_cast<unsigned>(n), ~0U, 0);
    if (r.listen_fds)
        format_listen_pid(listen_pid, sizeof listen_pid, getpid());
    execve(r.path.c_str(), argv.data(), envp.data());
    const char msg[] = "sniproxyd: exec failed for a child process\n";
    [[maybe_unused]] auto w = write(2, msg, sizeof msg - 1);
    _exit(127);
}

std::string running_executable()
{
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

} // namespace sniproxy
