// spawn.cc: fork + exec, keeping descriptor and environment handling out of the parent.
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
        env_own.push_back("LISTEN_FDS=" + std::to_string(r.inherit.size()));
    char listen_pid[48] = "LISTEN_PID=";
    std::vector<char*> envp;
    for (char** e = environ; *e; e++) {
        if (std::strncmp(*e, "LISTEN_", 7) != 0)
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
    // Child. Move the inherited fds out of the way first, then into 3, 4, ...: a plain
    // dup2 loop could overwrite one that is still to be moved.
    int moved[64];
    const std::size_t n = std::min<std::size_t>(r.inherit.size(), 64);
    for (std::size_t i = 0; i < n; i++) {
        moved[i] = fcntl(r.inherit[i], F_DUPFD_CLOEXEC, 100);
        if (moved[i] < 0)
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
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
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
