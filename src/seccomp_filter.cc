// seccomp_filter.cc: the worker's syscall allowlist (libseccomp). Anything not listed
// kills the whole worker (SCMP_ACT_KILL_PROCESS); with --enable-seccomp-debug it is
// trapped instead and reported by number on stderr, so a missing entry is easy to find.
//
// A worker only: waits in epoll, receives client fds from the parent, stats
// HOST/tls-socket, connects a new AF_UNIX stream socket to it, and copies bytes. So no
// open, no exec, no fork, no network sockets, no executable memory.
#include "config.h"

#include "seccomp_filter.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <utility>

namespace sniproxy {

namespace {

    // Syscalls allowed with any arguments. Names missing on the running architecture
    // (stat on aarch64, mmap2 on x86_64) are skipped; a name libseccomp does not know at
    // all is a typo and fails the load.
    // clang-format off
    constexpr const char* allowed_syscalls[] = {
        // The parent's socketpair: client fds arrive by recvmsg(SCM_RIGHTS), log records
        // leave by send/sendmsg (glibc's send/recv are sendto/recvfrom).
        "recvmsg", "sendmsg", "sendmmsg", "sendto", "recvfrom", "send", "recv",
        // Waiting for room in the channel for the last log records before exit.
        "poll", "ppoll",
        // Forwarding bytes between client and backend, half-close, the splice fast path.
        "read", "readv", "write", "writev", "shutdown", "close", "splice", "pipe2",
        // Connecting to the backend's Unix socket (socket() below only creates AF_UNIX
        // stream sockets; Landlock, where the kernel has it, stops a handed client socket
        // from being reconnected over TCP). No getsockopt/setsockopt: no worker code calls
        // them (a Unix connect completes at once), and they reach TCP_ULP, SO_ATTACH_FILTER...
        "connect", "getpeername", "getsockname",
        // Route lookup: lstat/fstatat on HOST/tls-socket, relative to the chroot.
        "stat", "lstat", "fstat", "newfstatat", "statx",
        "stat64", "lstat64", "fstat64", "fstatat64",
        // The hosts cache (hosts_cache.cc): a watch per cached entry (the inotify instance is
        // made before the filter, and read like any descriptor); readlinkat below reads a
        // symlinked entry's target.
        "inotify_add_watch",
        // libevent's epoll backend (epoll_create1 too, in case the base is made after the
        // filter) and its clocks, usually vDSO calls but with syscalls as the fallback.
        "epoll_wait", "epoll_pwait", "epoll_ctl", "epoll_create1",
        "clock_gettime", "clock_gettime64", "clock_getres", "gettimeofday",
        // libevent: arc4random seeds from getrandom; event_base_new reads the ids
        // (evutil_issetugid) before trusting EVENT_* variables; deleting a signal event or
        // (rt_sigaction, madvise, futex and mremap are allowed by argument in add_rules.)
        "getrandom", "getuid", "geteuid", "getgid", "getegid",
        // malloc: heap growth and large chunks.
        "brk", "munmap",
        // Process basics: getpid (libevent, glibc), exiting, returning from and masking
        // signal handlers (libevent's signal events), resuming interrupted syscalls.
        "getpid", "exit", "exit_group", "rt_sigreturn", "rt_sigprocmask", "restart_syscall",
        // abort(): glibc's raise asks gettid for the target of its tgkill (allowed below).
        "gettid",
#ifndef WITH_SANITIZERS // which allow it below
        "readlinkat",
#endif
#ifdef WITH_SANITIZERS
        // Sanitizer builds only, for ASan/UBSan reports: the alternate signal stack, the
        // executable's name and the maps file for symbolizing, prctl probes.
        // (LeakSanitizer is turned off once sandboxed: see sandbox.cc.)
        "sigaltstack", "readlink", "readlinkat", "open", "openat", "prctl",
        "sched_yield",
        // Their allocators: MADV_NOHUGEPAGE, MADV_DONTDUMP, ...; their own locks.
        "madvise", "futex", "mremap",
#endif
    };
    // clang-format on

    struct FilterRelease {
        void operator()(void* ctx) const { seccomp_release(ctx); }
    };
    using FilterPtr = std::unique_ptr<void, FilterRelease>;

    // libseccomp returns -errno.
    std::string failure(const std::string& step, int rc)
    {
        return "seccomp: " + step + ": " + std::strerror(-rc);
    }

    constexpr scmp_arg_cmp arg(unsigned index, scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0)
    {
        return scmp_arg_cmp { index, op, a, b };
    }

    // Adds one allow rule for `name` with all of `conditions` (ANDed). Returns true
    // without adding anything when the syscall does not exist on this architecture.
    bool allow(scmp_filter_ctx ctx, const char* name,
        std::initializer_list<scmp_arg_cmp> conditions, std::string& error)
    {
        const int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) {
            error = std::string("seccomp: unknown syscall name \"") + name + "\" in the allowlist";
            return false;
        }
        if (nr < 0) // a pseudo number: this syscall is not on the running architecture
            return true;
        const int rc = seccomp_rule_add_array(
            ctx, SCMP_ACT_ALLOW, nr, static_cast<unsigned>(conditions.size()), conditions.begin());
        if (rc < 0) {
            error = failure(std::string("allowing ") + name, rc);
            return false;
        }
        return true;
    }

    bool add_rules(scmp_filter_ctx ctx, std::string& error)
    {
        for (const char* name : allowed_syscalls)
            if (!allow(ctx, name, {}, error))
                return false;

        // Backend connections only: AF_UNIX stream sockets, optionally non-blocking and
        // close-on-exec. No TCP/UDP/raw/netlink sockets, no datagrams.
        const scmp_datum_t type_mask = ~static_cast<scmp_datum_t>(SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (!allow(ctx, "socket",
                { arg(0, SCMP_CMP_EQ, AF_UNIX),
                    arg(1, SCMP_CMP_MASKED_EQ, type_mask, SOCK_STREAM) },
                error))
            return false;

        // fcntl: O_NONBLOCK (evutil_make_socket_nonblocking) and FD_CLOEXEC; not locks,
        // F_SETOWN signals, F_DUPFD or pipe resizing.
        for (const char* name : { "fcntl", "fcntl64" })
            for (int cmd : { F_GETFL, F_SETFL, F_GETFD, F_SETFD })
                if (!allow(
                        ctx, name, { arg(1, SCMP_CMP_EQ, static_cast<scmp_datum_t>(cmd)) }, error))
                    return false;

#ifndef WITH_SANITIZERS // which allow any openat (above)
        // openat: HOST/allow, read-only (host_allow.cc): no write access, no creating,
        // truncating or appending, no O_PATH or O_TMPFILE; any other flag is harmless.
        const scmp_datum_t write_bits
            = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_PATH | O_TMPFILE;
        if (!allow(ctx, "openat", { arg(2, SCMP_CMP_MASKED_EQ, write_bits, O_RDONLY) }, error))
            return false;
#endif

        // ioctl: only FIONREAD, which libevent uses to size its reads.
        if (!allow(ctx, "ioctl", { arg(1, SCMP_CMP_EQ, FIONREAD) }, error))
            return false;
#ifdef WITH_SANITIZERS
        // Sanitizer reports ask isatty(2) whether to use colour.
        if (!allow(ctx, "ioctl", { arg(1, SCMP_CMP_EQ, TCGETS) }, error))
            return false;
#endif

        // Memory for malloc, never executable: no mapping or remapping memory as code.
        for (const char* name : { "mmap", "mmap2" })
            if (!allow(ctx, name, { arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) }, error))
                return false;
        if (!allow(ctx, "mprotect", { arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) }, error))
            return false;

        // malloc trims with MADV_DONTNEED (MADV_FREE, MADV_NORMAL on other libcs); not
        // MADV_HWPOISON, MADV_MERGEABLE, MADV_DONTFORK or the other hundred knobs.
        for (int advice : { MADV_DONTNEED, MADV_FREE, MADV_NORMAL })
            if (!allow(ctx, "madvise", { arg(2, SCMP_CMP_EQ, static_cast<scmp_datum_t>(advice)) },
                    error))
                return false;
        // glibc's internal locks: wait and wake (private or shared, any clock); no PI
        // futexes, requeue or FUTEX_WAIT_MULTIPLE, where the futex bugs of the past lived.
        const scmp_datum_t futex_mask
            = 0xffffffffU & ~static_cast<scmp_datum_t>(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        for (int op : { FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET })
            if (!allow(ctx, "futex",
                    { arg(1, SCMP_CMP_MASKED_EQ, futex_mask, static_cast<scmp_datum_t>(op)) },
                    error))
                return false;
        // realloc of a large chunk moves it; placing it at a chosen address does not happen.
        if (!allow(ctx, "mremap",
                { arg(3, SCMP_CMP_MASKED_EQ, ~static_cast<scmp_datum_t>(MREMAP_MAYMOVE), 0) },
                error))
            return false;
            // Handlers are set before the filter (workers add no signal events, so libevent never
            // restores one; strace under load shows no call): only queries (act == NULL) remain.
            // Sanitizer builds install their death handlers late, so they keep it whole.
#ifdef WITH_SANITIZERS
        if (!allow(ctx, "rt_sigaction", {}, error))
            return false;
#else
        if (!allow(ctx, "rt_sigaction", { arg(1, SCMP_CMP_EQ, 0) }, error))
            return false;
#endif

        // abort()/assert(): raise(SIGABRT) is tgkill on our own pid (and gettid), so a failed
        // assertion is reported as SIGABRT rather than as a forbidden syscall. The worker never
        // forks, so the pid taken now stays right.
        if (!allow(ctx, "tgkill",
                { arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(getpid())),
                    arg(2, SCMP_CMP_EQ, SIGABRT) },
                error))
            return false;
        return true;
    }

    // The parent's allowlist (strace -f of the daemon through start, traffic, SIGHUP, SIGUSR2
    // and SIGTERM). Workers and upgraded parents are exec'd under it, so it also covers
    // exec, the dynamic loader and a worker's own jailing up to its filter, and it is a
    // superset of the worker's list (a worker runs under both). What it keeps out: new
    // network sockets, bind/listen, most socket options, ptrace, bpf, io_uring, namespaces,
    // mounts, modules, keyrings, perf, file creation and changes other than the pid file.
    // clang-format off
    constexpr const char* parent_syscalls[] = {
        "accept4", "accept", "recvmsg", "sendmsg", "sendmmsg", "recvmmsg", "sendto", "recvfrom",
        "send", "recv", "socketpair", "connect", "shutdown", "getpeername", "getsockname",
        "read", "readv", "write", "writev", "pread64", "lseek", "close", "close_range",
        "splice", "pipe2", "pipe", "eventfd2", "dup", "dup2", "dup3",
        "poll", "ppoll", "epoll_create1", "epoll_create", "epoll_ctl", "epoll_wait",
        "epoll_pwait", "epoll_pwait2",
        // A worker's hosts cache (hosts_cache.cc), made before its own filter; statfs: is
        // the hosts directory on a filesystem whose every change inotify reports.
        "inotify_init1", "inotify_add_watch", "statfs", "statfs64",
        "openat", "open", "stat", "lstat", "fstat", "newfstatat", "statx", "access",
        "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd", "unlink", "unlinkat",
        "chdir", "fchdir", "chroot", "umask",
        "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "futex",
        "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
        "getrandom", "uname", "sched_getaffinity", "sched_yield",
        "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid",
        "getresuid", "getresgid", "getgroups",
        // Spawning workers and the upgraded parent, and what they do before their own filter.
        "clone", "clone3", "fork", "vfork", "execve", "execveat", "wait4", "waitid", "kill",
        "tgkill", "setsid", "exit", "exit_group", "set_robust_list", "set_tid_address", "rseq",
        "arch_prctl", "prctl", "prlimit64", "getrlimit", "setrlimit",
        "capget", "capset", "setgroups", "setresuid", "setresgid", "setuid", "setgid",
        "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
#ifdef WITH_SANITIZERS
        "ptrace", // LeakSanitizer's exit-time check stops the parent's threads with it
#endif
    };
    // clang-format on

    bool add_parent_rules(scmp_filter_ctx ctx, std::string& error)
    {
        for (const char* name : parent_syscalls)
            if (!allow(ctx, name, {}, error))
                return false;
        // syslog's datagram socket, the workers' channels and their backend connections.
        if (!allow(ctx, "socket", { arg(0, SCMP_CMP_EQ, AF_UNIX) }, error))
            return false;
        // An upgraded parent adopts the listeners under this filter: it asks SO_ACCEPTCONN
        // and sets the options accepted sockets inherit. Nothing else (no TCP_ULP, no
        // SO_ATTACH_FILTER on a client's socket).
        if (!allow(ctx, "getsockopt", { arg(1, SCMP_CMP_EQ, SOL_SOCKET) }, error))
            return false;
        // TCP_INFO, read only: the accept queue's length, so that a batch of accepts need
        // not end with a failing accept4 (accept_pacer.h).
        if (!allow(ctx, "getsockopt",
                { arg(1, SCMP_CMP_EQ, IPPROTO_TCP), arg(2, SCMP_CMP_EQ, TCP_INFO) }, error))
            return false;
        const std::pair<int, int> options[] = { { SOL_SOCKET, SO_KEEPALIVE },
            { SOL_SOCKET, SO_REUSEADDR }, { IPPROTO_TCP, TCP_NODELAY },
            { IPPROTO_TCP, TCP_KEEPIDLE }, { IPPROTO_TCP, TCP_KEEPINTVL },
            { IPPROTO_TCP, TCP_KEEPCNT }, { IPPROTO_TCP, TCP_DEFER_ACCEPT },
            { IPPROTO_IPV6, IPV6_V6ONLY } };
        for (auto [level, name] : options)
            if (!allow(ctx, "setsockopt",
                    { arg(1, SCMP_CMP_EQ, static_cast<scmp_datum_t>(level)),
                        arg(2, SCMP_CMP_EQ, static_cast<scmp_datum_t>(name)) },
                    error))
                return false;
        for (const char* name : { "fcntl", "fcntl64" })
            for (int cmd : { F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD, F_DUPFD_CLOEXEC })
                if (!allow(
                        ctx, name, { arg(1, SCMP_CMP_EQ, static_cast<scmp_datum_t>(cmd)) }, error))
                    return false;
        for (unsigned long request : { FIONREAD, FIONBIO, FIOCLEX, TCGETS })
            if (!allow(ctx, "ioctl", { arg(1, SCMP_CMP_EQ, request) }, error))
                return false;
        return true;
    }

#ifdef SECCOMP_DEBUG
    // Async-signal-safe: formats the number by hand and only calls write and _exit.
    // (seccomp_syscall_resolve_num_arch would give the name but may allocate.)
    void report_forbidden_syscall(int, siginfo_t* info, void*)
    {
        char line[160];
        std::size_t len = 0;
        auto put = [&](const char* s) {
            while (*s && len < sizeof line)
                line[len++] = *s++;
        };
        put("sniproxyd worker: forbidden syscall ");
        char digits[16];
        int n = 0;
        unsigned value = static_cast<unsigned>(info->si_syscall);
        do {
            digits[n++] = static_cast<char>('0' + value % 10);
            value /= 10;
        } while (value && n < static_cast<int>(sizeof digits));
        while (n > 0 && len < sizeof line)
            line[len++] = digits[--n];
        put(" -- add it to the allowlist in seccomp_filter.cc\n");
        if (write(STDERR_FILENO, line, len) < 0) {
            // Nothing left to report it with.
        }
        _exit(159);
    }

    // Installed before the filter is loaded, so even the first forbidden call is reported.
    bool install_sigsys_reporter(std::string& error)
    {
        struct sigaction action;
        std::memset(&action, 0, sizeof action);
        action.sa_sigaction = report_forbidden_syscall;
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        sigset_t sigsys;
        sigemptyset(&sigsys);
        sigaddset(&sigsys, SIGSYS);
        if (sigaction(SIGSYS, &action, nullptr) != 0
            || sigprocmask(SIG_UNBLOCK, &sigsys, nullptr) != 0) {
            error = std::string("load_worker_seccomp: installing the SIGSYS reporter: ")
                + std::strerror(errno);
            return false;
        }
        return true;
    }
#endif

} // namespace

namespace {
    using AddRules = bool (*)(scmp_filter_ctx, std::string&);

    bool load_filter(uint32_t default_action, AddRules add, std::string& error)
    {
        FilterPtr ctx(seccomp_init(default_action));
        if (!ctx) {
            error = "seccomp_init failed (is libseccomp too old for SCMP_ACT_KILL_PROCESS?)";
            return false;
        }
        struct Attribute {
            scmp_filter_attr attr;
            uint32_t value;
            const char* step;
        };
        const Attribute attributes[] = {
            // no_new_privs is the caller's explicit step (set_no_new_privs), not a side effect.
            { SCMP_FLTATR_CTL_NNP, 0, "leaving no_new_privs to set_no_new_privs" },
            // Syscalls of a foreign ABI (i386 int 0x80 on x86_64) are refused as well.
            { SCMP_FLTATR_ACT_BADARCH, default_action, "setting the action for foreign ABIs" },
            // Cover every thread, should a library ever have started one.
            { SCMP_FLTATR_CTL_TSYNC, 1, "enabling thread synchronisation" },
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 5)
            // A binary tree of syscall numbers instead of a linear list: O(log n) per call.
            { SCMP_FLTATR_CTL_OPTIMIZE, 2, "choosing the binary-tree layout" },
#endif
        };
        for (const Attribute& a : attributes) {
            if (const int rc = seccomp_attr_set(ctx.get(), a.attr, a.value); rc < 0) {
                error = failure(a.step, rc);
                return false;
            }
        }
        if (!add(ctx.get(), error))
            return false;
        if (const int rc = seccomp_load(ctx.get()); rc < 0) {
            error = failure("seccomp_load", rc);
            return false;
        }
        return true;
    }
} // namespace

bool load_seccomp_allowlist(std::string& error)
{
#ifdef SECCOMP_DEBUG
    if (!install_sigsys_reporter(error))
        return false;
    return load_filter(SCMP_ACT_TRAP, add_rules, error);
#else
    return load_filter(SCMP_ACT_KILL_PROCESS, add_rules, error);
#endif
}

bool load_parent_seccomp(std::string* err)
{
    // EPERM rather than a kill: a call missed here fails where the parent handles errors,
    // instead of taking every listener down with it.
    if (!load_filter(SCMP_ACT_ERRNO(EPERM), add_parent_rules, *err)) {
        *err = "parent seccomp: " + *err;
        return false;
    }
    return true;
}

} // namespace sniproxy
