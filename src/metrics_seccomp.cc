// metrics_seccomp.cc: the metrics server's syscall allowlist (libseccomp), built the way
// seccomp_filter.cc builds the worker's. The server waits in epoll, accepts scrapers on
// the listener the parent bound, reads a request, reads the shared counters (plain memory
// loads) and writes an answer. So, unlike a worker: accept4 but no socket, connect,
// recvmsg or splice; no open, exec or fork; no executable memory.
#include "config.h"

#include "metrics_seccomp.h"

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>
#include <memory>

#ifdef WITH_SANITIZERS
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

namespace sniproxy {

namespace {

    // clang-format off
    constexpr const char* allowed_syscalls[] = {
        // Scrapers: accepted, read, answered, shut down and closed. glibc's send/recv are
        // sendto/recvfrom; send carries MSG_NOSIGNAL, so a scraper that left is EPIPE.
        "accept4", "accept", "read", "recvfrom", "write", "sendto", "shutdown", "close",
        // Its log records go to the parent over the channel (channel.cc's sendmsg; a
        // descriptor attached to one makes the parent replace the server).
        "sendmsg",
        // libevent's epoll loop and its clocks (vDSO, with syscalls as the fallback).
        "epoll_wait", "epoll_pwait", "epoll_ctl", "epoll_create1",
        "clock_gettime", "clock_gettime64", "clock_getres", "gettimeofday",
        // libevent: arc4random seeds from getrandom; event_base_new reads the ids.
        "getrandom", "getuid", "geteuid", "getgid", "getegid",
        // A scrape that meets the parent folding a worker's counts yields and reads again.
        "sched_yield",
        // malloc (the answer text is built in memory).
        "brk", "munmap", "mremap", "madvise", "futex",
        // Process basics, and abort()'s gettid.
        "getpid", "gettid", "exit", "exit_group", "rt_sigreturn", "rt_sigprocmask",
        "restart_syscall",
#ifdef WITH_SANITIZERS
        // Sanitizer builds only, for ASan/UBSan reports (as in seccomp_filter.cc).
        "sigaltstack", "readlink", "readlinkat", "open", "openat", "prctl",
#endif
    };
    // clang-format on

    struct FilterRelease {
        void operator()(void* ctx) const { seccomp_release(ctx); }
    };
    using FilterPtr = std::unique_ptr<void, FilterRelease>;

    // libseccomp returns -errno.
    bool failed(const std::string& step, int rc, std::string* err)
    {
        *err = "load_metrics_seccomp: " + step + ": " + std::strerror(-rc);
        return false;
    }

    constexpr scmp_arg_cmp arg(unsigned index, scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0)
    {
        return scmp_arg_cmp { index, op, a, b };
    }

    // Skips a syscall this architecture does not have; an unknown name is a typo.
    bool allow(scmp_filter_ctx ctx, const char* name,
        std::initializer_list<scmp_arg_cmp> conditions, std::string* err)
    {
        const int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) {
            *err = std::string("load_metrics_seccomp: unknown syscall name \"") + name + "\"";
            return false;
        }
        if (nr < 0)
            return true;
        const int rc = seccomp_rule_add_array(
            ctx, SCMP_ACT_ALLOW, nr, static_cast<unsigned>(conditions.size()), conditions.begin());
        return rc < 0 ? failed(std::string("allowing ") + name, rc, err) : true;
    }

    bool add_rules(scmp_filter_ctx ctx, std::string* err)
    {
        for (const char* name : allowed_syscalls)
            if (!allow(ctx, name, {}, err))
                return false;
        // O_NONBLOCK and FD_CLOEXEC only.
        for (const char* name : { "fcntl", "fcntl64" })
            for (int cmd : { F_GETFL, F_SETFL, F_GETFD, F_SETFD })
                if (!allow(ctx, name, { arg(1, SCMP_CMP_EQ, static_cast<scmp_datum_t>(cmd)) }, err))
                    return false;
#ifdef WITH_SANITIZERS
        if (!allow(ctx, "ioctl", { arg(1, SCMP_CMP_EQ, TCGETS) }, err))
            return false;
#endif
        for (const char* name : { "mmap", "mmap2", "mprotect" })
            if (!allow(ctx, name, { arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) }, err))
                return false;
        // abort(): SIGABRT to ourselves only.
        return allow(ctx, "tgkill",
            { arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(getpid())),
                arg(2, SCMP_CMP_EQ, SIGABRT) },
            err);
    }

} // namespace

bool load_metrics_seccomp(std::string* err)
{
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
        *err = "load_metrics_seccomp: no_new_privs is not set; call set_no_new_privs first";
        return false;
    }
#ifdef WITH_SANITIZERS
    // Reports need /proc/self/maps, read now; LeakSanitizer's exit check would ptrace,
    // which the filter forbids, so it runs now instead and not at exit.
    __sanitizer_sandbox_on_notify(nullptr);
    __lsan_do_leak_check();
#endif
    FilterPtr ctx(seccomp_init(SCMP_ACT_KILL_PROCESS));
    if (!ctx) {
        *err = "load_metrics_seccomp: seccomp_init failed";
        return false;
    }
    if (const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc < 0)
        return failed("leaving no_new_privs to set_no_new_privs", rc, err);
    if (const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        rc < 0)
        return failed("setting the action for foreign ABIs", rc, err);
    if (const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc < 0)
        return failed("enabling thread synchronisation", rc, err);
    if (!add_rules(ctx.get(), err))
        return false;
    if (const int rc = seccomp_load(ctx.get()); rc < 0)
        return failed("seccomp_load", rc, err);
    return true;
}

bool sandbox_metrics_server(const std::string& hosts_dir, const Identity* who, std::string* err)
{
    std::string error;
    if (who && !jail_worker(hosts_dir, *who, error)) {
        *err = "metrics server: " + error;
        return false;
    }
    if (who)
        prctl(PR_SET_PDEATHSIG, SIGKILL); // after setuid, which clears it
    if (!set_no_new_privs(error)) {
        *err = "metrics server: " + error;
        return false;
    }
    return load_metrics_seccomp(err);
}

} // namespace sniproxy
