// sandbox_test.cc: the worker sandbox (jail, no_new_privs, seccomp allowlist) and the
// parent's capability drop, exercised through the real code in forked children, since none
// of it can be undone in the test process. What the kernel ended up applying is read from
// /proc/PID/status by the (unconfined) test process. Tests that need root say so and skip.
#include "catch.h"

#include "channel.h"
#include "channel_peer.h"
#include "fd.h"
#include "sandbox.h"
#include "spawn.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

using namespace sniproxy;
using sniproxy::test::send_connection;

namespace {

// ---- child processes -------------------------------------------------------------------

// Runs `body` in a forked child and returns its wait status, or -1 if fork or waitpid
// failed. The child never returns into Catch2: it leaves through _exit with body's result.
// Safe to use inside a child too (it throws nothing).
int fork_and_wait(const std::function<int()>& body)
{
    const pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        _exit(body());
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

int run_child(const std::function<int()>& body)
{
    const int status = fork_and_wait(body);
    REQUIRE(status != -1);
    return status;
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

std::string describe(int status)
{
    if (WIFEXITED(status))
        return "exited with " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return std::string("killed by ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// How a forbidden syscall ends a worker: SIGSYS, or the SECCOMP_DEBUG reporter's exit code.
bool killed_by_filter(int status)
{
#ifdef SECCOMP_DEBUG
    return WIFEXITED(status) && WEXITSTATUS(status) == 159;
#else
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
#endif
}

void write_all(int fd, const std::string& text)
{
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = write(fd, text.data() + done, text.size() - done);
        if (n <= 0)
            return;
        done += static_cast<std::size_t>(n);
    }
}

std::string read_all(int fd)
{
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            text.append(buf, static_cast<std::size_t>(n));
    return text;
}

// Reads one line (without the newline) from a pipe; empty when the writer closed it.
std::string read_line(int fd)
{
    std::string line;
    char c;
    while (read(fd, &c, 1) == 1 && c != '\n')
        line += c;
    return line;
}

struct Pipe {
    UniqueFd read_end, write_end;
    Pipe()
    {
        int fds[2];
        REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
        read_end.reset(fds[0]);
        write_end.reset(fds[1]);
    }
};

// Child side: report a failed step on `fd` and end.
[[noreturn]] void child_fail(int fd, const std::string& what)
{
    write_all(fd, what + "\n");
    _exit(1);
}

void child_check(int fd, bool ok, const char* step)
{
    if (!ok)
        child_fail(fd, std::string(step) + ": " + std::strerror(errno));
}

// Child side: what a worker does last, through the real code.
void child_enter_filter(int report_fd)
{
    std::string error;
    if (!sniproxy::set_no_new_privs(error) || !sniproxy::load_worker_seccomp(error))
        child_fail(report_fd, error);
}

// ---- /proc -----------------------------------------------------------------------------

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The value of a "Name:\tvalue" line of /proc/PID/status, or "(missing)".
std::string status_field(const std::string& status, const std::string& name)
{
    std::istringstream lines(status);
    std::string line;
    while (std::getline(lines, line))
        if (line.rfind(name + ":", 0) == 0) {
            std::string value = line.substr(name.size() + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            value.erase(value.find_last_not_of(" \t") + 1);
            return value;
        }
    return "(missing)";
}

std::string hex_mask(unsigned long long mask)
{
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", mask);
    return text;
}

const unsigned long long parent_caps_mask
    = (1ULL << CAP_SETUID) | (1ULL << CAP_SETGID) | (1ULL << CAP_SYS_CHROOT) | (1ULL << CAP_KILL);

bool is_root()
{
    return geteuid() == 0;
}

// A fresh directory, searchable by everyone (the worker user must be able to enter it).
struct TempDir {
    std::string path;
    TempDir()
    {
        char name[] = "/tmp/sandbox_test.XXXXXX";
        REQUIRE(mkdtemp(name) != nullptr);
        REQUIRE(chmod(name, 0755) == 0);
        char real[PATH_MAX];
        REQUIRE(realpath(name, real) != nullptr);
        path = real;
    }
    ~TempDir()
    {
        // Best effort: only the test's own socket file may be inside.
        unlink((path + "/tls-socket").c_str());
        rmdir(path.c_str());
    }
};

const passwd* nobody()
{
    return getpwnam("nobody");
}

// A child that has confined itself stays alive until released, so the test process can read
// its /proc/PID/status. `confine` runs in the child and reports failures on its fd.
class HeldChild {
public:
    explicit HeldChild(const std::function<void(int report_fd)>& confine)
    {
        pid_ = fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            report_.read_end.reset();
            release_.write_end.reset();
            confine(report_.write_end.get());
            write_all(report_.write_end.get(), "ready\n");
            char c;
            while (read(release_.read_end.get(), &c, 1) < 0 && errno == EINTR) { }
            _exit(0);
        }
        report_.write_end.reset();
        release_.read_end.reset();
        first_line_ = read_line(report_.read_end.get());
    }
    ~HeldChild()
    {
        if (pid_ > 0) {
            release_.write_end.reset();
            waitpid(pid_, nullptr, 0);
        }
    }

    // "ready", or what the child reported instead.
    const std::string& report() const { return first_line_; }
    std::string proc(const char* entry) const
    {
        return "/proc/" + std::to_string(pid_) + "/" + entry;
    }
    // Releases the child and returns its wait status.
    int finish()
    {
        release_.write_end.reset();
        int status = 0;
        REQUIRE(waitpid(pid_, &status, 0) == pid_);
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_ = -1;
    Pipe report_, release_;
    std::string first_line_;
};

} // namespace

// ---- seccomp ---------------------------------------------------------------------------

TEST_CASE("the allowlist lets a filtered child make the calls a worker makes", "[sandbox][seccomp]")
{
    TempDir dir;
    // The backend: a listening Unix socket at DIR/tls-socket, made before the fork.
    UniqueFd backend(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(backend);
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    const std::string socket_path = dir.path + "/tls-socket";
    REQUIRE(socket_path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    REQUIRE(bind(backend.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(backend.get(), 4) == 0);

    Pipe report;
    const int status = run_child([&] {
        const int out = report.write_end.get();
        // Before the filter, like a worker: the channel to the parent, cwd in the hosts dir.
        int channel[2];
        child_check(
            out, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) == 0, "socketpair");
        child_check(out, chdir(dir.path.c_str()) == 0, "chdir");
        child_enter_filter(out);

        child_check(out, syscall(SYS_getpid) == getpid(), "getpid");
        struct stat st;
        child_check(out, lstat("tls-socket", &st) == 0 && S_ISSOCK(st.st_mode), "lstat");
        child_check(out, fstatat(AT_FDCWD, "tls-socket", &st, AT_SYMLINK_NOFOLLOW) == 0, "fstatat");
        child_check(out, lstat("missing/tls-socket", &st) == -1 && errno == ENOENT,
            "lstat of a missing route");

        // Connecting to the backend, as the worker does.
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        child_check(out, fd >= 0, "socket(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC)");
        const int plain = socket(AF_UNIX, SOCK_STREAM, 0);
        child_check(out, plain >= 0, "socket(AF_UNIX, SOCK_STREAM)");
        child_check(out, close(plain) == 0, "close");
        sockaddr_un relative {};
        relative.sun_family = AF_UNIX;
        std::strcpy(relative.sun_path, "tls-socket");
        child_check(out,
            connect(fd, reinterpret_cast<sockaddr*>(&relative), sizeof relative) == 0
                || errno == EINPROGRESS,
            "connect");
        sockaddr_un name {};
        socklen_t len = sizeof name;
        child_check(
            out, getpeername(fd, reinterpret_cast<sockaddr*>(&name), &len) == 0, "getpeername");
        len = sizeof name;
        child_check(
            out, getsockname(fd, reinterpret_cast<sockaddr*>(&name), &len) == 0, "getsockname");
        child_check(out, write(fd, "hello", 5) == 5, "write");
        iovec iov[2] = { { const_cast<char*>("a"), 1 }, { const_cast<char*>("b"), 1 } };
        child_check(out, writev(fd, iov, 2) == 2, "writev");
        child_check(out, send(fd, "c", 1, MSG_NOSIGNAL) == 1, "send");
        child_check(out, shutdown(fd, SHUT_WR) == 0, "shutdown");
        const int flags = fcntl(fd, F_GETFL);
        child_check(out, flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0,
            "fcntl(F_GETFL/F_SETFL)");
        child_check(out, fcntl(fd, F_GETFD) == FD_CLOEXEC, "fcntl(F_GETFD)");

        // The parent's channel, through the real channel code: a client fd, then a log record.
        int available = 0;
        child_check(out, send_connection(channel[0], fd, ConnectionInfo { 42, {} }) == 0,
            "send_connection");
        child_check(out, ioctl(channel[1], FIONREAD, &available) == 0, "ioctl(FIONREAD)");
        {
            Received m;
            child_check(out, receive_message(channel[1], m) == Recv::message && m.nfds == 1,
                "receive_message (SCM_RIGHTS)");
        }
        const std::uint8_t record[] = { 6, 'l', 'o', 'g' };
        child_check(out, send_message(channel[0], Msg::log, record) == 0, "send_message");
        {
            Received m;
            child_check(out, receive_message(channel[1], m) == Recv::message && m.payload_len == 4,
                "receive_message (log)");
        }
        const Outgoing batch[] = { { Msg::log, record }, { Msg::log, record } };
        child_check(out, send_messages(channel[0], batch) == 2, "send_messages (sendmmsg)");
        for (int i = 0; i < 2; i++) {
            Received m;
            child_check(out, receive_message(channel[1], m) == Recv::message && m.payload_len == 4,
                "receive_message (batched log)");
        }
        pollfd room { channel[0], POLLOUT, 0 };
        child_check(out, poll(&room, 1, 0) == 1, "poll (room in the channel)");
        child_check(out, close(fd) == 0, "close(backend)");

        // The event loop.
        const int ep = epoll_create1(EPOLL_CLOEXEC);
        child_check(out, ep >= 0, "epoll_create1");
        epoll_event ev {};
        ev.events = EPOLLIN;
        child_check(out, epoll_ctl(ep, EPOLL_CTL_ADD, channel[1], &ev) == 0, "epoll_ctl");
        child_check(out, epoll_wait(ep, &ev, 1, 0) == 0, "epoll_wait");
        sigset_t mask;
        sigemptyset(&mask);
        child_check(out, epoll_pwait(ep, &ev, 1, 0, &mask) == 0, "epoll_pwait");
        child_check(out, sigprocmask(SIG_SETMASK, &mask, nullptr) == 0, "rt_sigprocmask");
        timespec ts;
        child_check(out, syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) == 0,
            "clock_gettime (syscall, not vDSO)");
        timeval tv;
        child_check(out, syscall(SYS_gettimeofday, &tv, nullptr) == 0, "gettimeofday");
        char buf[16];
        child_check(
            out, getrandom(buf, sizeof buf, 0) == static_cast<ssize_t>(sizeof buf), "getrandom");

        // malloc and friends: raw on purpose, to make glibc issue mmap, mremap and munmap.
        // NOLINTBEGIN(cppcoreguidelines-no-malloc)
        void* big = std::malloc(8 << 20); // mmap
        child_check(out, big != nullptr, "malloc(8 MiB)");
        std::memset(big, 'm', 8 << 20);
        big = std::realloc(big, 16 << 20); // mremap
        child_check(out, big != nullptr, "realloc(16 MiB)");
        std::free(big); // munmap
        // NOLINTEND(cppcoreguidelines-no-malloc)
        std::vector<std::string> small(1000, std::string(100, 's')); // brk
        void* page
            = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        child_check(out, page != MAP_FAILED, "mmap(PROT_READ|PROT_WRITE)");
        child_check(out, mprotect(page, 4096, PROT_READ) == 0, "mprotect(PROT_READ)");
        child_check(out, madvise(page, 4096, MADV_DONTNEED) == 0, "madvise");
        static int futex_word = 0;
        child_check(out,
            syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0) >= 0,
            "futex(FUTEX_WAKE_PRIVATE)");
        struct sigaction current { };
        child_check(out, sigaction(SIGPIPE, nullptr, &current) == 0, "rt_sigaction (query)");
        child_check(out, munmap(page, 4096) == 0, "munmap");

        // The splice fast path.
        int p1[2], p2[2];
        child_check(out, pipe2(p1, O_CLOEXEC) == 0 && pipe2(p2, O_CLOEXEC) == 0, "pipe2");
        child_check(out, write(p1[1], "spl", 3) == 3, "write(pipe)");
        child_check(out, splice(p1[0], nullptr, p2[1], nullptr, 3, 0) == 3, "splice");
        iovec back = { buf, sizeof buf };
        child_check(out, readv(p2[0], &back, 1) == 3 && std::memcmp(buf, "spl", 3) == 0, "readv");
        return 0;
    });
    report.write_end.reset();
    INFO("child " << describe(status) << "; it reported: " << read_all(report.read_end.get()));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);

    // The backend got the bytes and the half-close.
    UniqueFd conn(accept(backend.get(), nullptr, nullptr));
    REQUIRE(conn);
    CHECK(read_all(conn.get()) == "helloabc");
}

TEST_CASE("the allowlist kills the worker on anything else", "[sandbox][seccomp]")
{
    struct Forbidden {
        const char* what;
        std::function<void()> call;
    };
    static char page[4096] __attribute__((aligned(4096)));
    const std::vector<Forbidden> forbidden = {
        { "socket(AF_INET, SOCK_STREAM)", [] { socket(AF_INET, SOCK_STREAM, 0); } },
        { "socket(AF_INET6, SOCK_STREAM)", [] { socket(AF_INET6, SOCK_STREAM, 0); } },
        { "socket(AF_INET, SOCK_DGRAM)", [] { socket(AF_INET, SOCK_DGRAM, 0); } },
        { "socket(AF_UNIX, SOCK_DGRAM)", [] { socket(AF_UNIX, SOCK_DGRAM, 0); } },
        { "socket(AF_UNIX, SOCK_SEQPACKET)", [] { socket(AF_UNIX, SOCK_SEQPACKET, 0); } },
        { "socket(AF_NETLINK, SOCK_RAW)", [] { socket(AF_NETLINK, SOCK_RAW, 0); } },
        { "socketpair",
            [] {
                int sv[2];
                socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
            } },
        { "bind",
            [] {
                sockaddr_un a {};
                a.sun_family = AF_UNIX;
                (void)bind(0, reinterpret_cast<sockaddr*>(&a), sizeof a); // must not return
            } },
        { "listen", [] { listen(0, 1); } },
        { "execve",
            [] {
                char* const argv[] = { const_cast<char*>("true"), nullptr };
                syscall(SYS_execve, "/bin/true", argv, environ);
            } },
#ifdef SYS_fork
        { "fork", [] { syscall(SYS_fork); } },
#endif
        { "mprotect(PROT_EXEC)", [] { mprotect(page, sizeof page, PROT_READ | PROT_EXEC); } },
        { "mmap(PROT_EXEC)",
            [] {
                (void)mmap(
                    nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            } },
        { "ioctl(TIOCGWINSZ)",
            [] {
                winsize w;
                ioctl(2, TIOCGWINSZ, &w);
            } },
        { "fcntl(F_DUPFD)", [] { fcntl(2, F_DUPFD, 10); } },
        { "setuid", [] { syscall(SYS_setuid, 0); } },
        { "chdir", [] { syscall(SYS_chdir, "/"); } },
        { "unlink", [] { unlinkat(AT_FDCWD, "x", 0); } },
        { "kill", [] { syscall(SYS_kill, 1, 0); } },
        // Socket options reach TCP_ULP, SO_ATTACH_FILTER...: no worker code needs them.
        { "getsockopt",
            [] {
                int v;
                socklen_t len = sizeof v;
                getsockopt(0, SOL_SOCKET, SO_ERROR, &v, &len);
            } },
        { "setsockopt(TCP_ULP)", [] { setsockopt(0, IPPROTO_TCP, TCP_ULP, "tls", 3); } },
#ifndef WITH_SANITIZERS // sanitizer runtimes need these whole, and install handlers late
        { "madvise(MADV_MERGEABLE)", [] { madvise(page, sizeof page, MADV_MERGEABLE); } },
        { "futex(FUTEX_LOCK_PI)",
            [] {
                static int word = 0;
                syscall(SYS_futex, &word, FUTEX_LOCK_PI_PRIVATE, 0, nullptr, nullptr, 0);
            } },
        { "mremap(MREMAP_FIXED)",
            [] {
                syscall(SYS_mremap, page, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
                    reinterpret_cast<void*>(std::uintptr_t { 1 } << 40));
            } },
        { "rt_sigaction(new handler)",
            [] {
                struct sigaction a { };
                a.sa_handler = SIG_IGN;
                sigaction(SIGUSR1, &a, nullptr);
            } },
#endif
        { "tgkill of another signal", [] { syscall(SYS_tgkill, getpid(), getpid(), SIGTERM); } },
#ifndef WITH_SANITIZERS // sanitizer builds let their runtime open /proc/self/maps
        // openat is allowed read-only (HOST/allow), never for writing or creating.
        { "openat for writing", [] { syscall(SYS_openat, AT_FDCWD, "/tmp/x", O_WRONLY); } },
        { "openat O_RDWR", [] { syscall(SYS_openat, AT_FDCWD, "/tmp/x", O_RDWR); } },
        { "openat O_CREAT",
            [] { syscall(SYS_openat, AT_FDCWD, "/tmp/x", O_RDONLY | O_CREAT, 0600); } },
        { "openat O_PATH", [] { syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_PATH); } },
#ifdef SYS_open
        { "open", [] { syscall(SYS_open, "/etc/passwd", O_RDONLY); } },
#endif
#endif
    };
    for (const Forbidden& f : forbidden) {
        Pipe report;
        const int status = run_child([&] {
            child_enter_filter(report.write_end.get());
            f.call();
            return 0; // survived: a hole in the filter
        });
        report.write_end.reset();
        INFO(f.what << ": child " << describe(status)
                    << "; it reported: " << read_all(report.read_end.get()));
        CHECK(killed_by_filter(status));
    }
#ifndef WITH_SANITIZERS
    // What HOST/allow needs survives.
    const int status = run_child([] {
        child_enter_filter(-1);
        const long fd
            = syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        return fd >= 0 ? 0 : 3;
    });
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
#endif
}

TEST_CASE("no_new_privs and the filter show in /proc and cannot be skipped", "[sandbox][seccomp]")
{
    SECTION("the kernel reports no_new_privs and one seccomp filter")
    {
        HeldChild child([](int out) { child_enter_filter(out); });
        REQUIRE(child.report() == "ready");
        const std::string status = read_file(child.proc("status"));
        CHECK(status_field(status, "NoNewPrivs") == "1");
        CHECK(status_field(status, "Seccomp") == "2");
        CHECK(status_field(status, "Seccomp_filters") == "1");
        CHECK(WIFEXITED(child.finish()));
    }
    SECTION("load_worker_seccomp refuses to run before set_no_new_privs")
    {
        Pipe report;
        const int result = run_child([&] {
            std::string error;
            if (sniproxy::load_worker_seccomp(error))
                return 1;
            write_all(report.write_end.get(), error);
            return 0;
        });
        report.write_end.reset();
        CHECK(result == 0);
        const std::string message = read_all(report.read_end.get());
        INFO(message);
        CHECK(contains(message, "set_no_new_privs"));
    }
}

TEST_CASE("abort() in a filtered worker still ends in SIGABRT", "[sandbox][seccomp]")
{
    Pipe report;
    const int status = run_child([&]() -> int {
        // Catch2's fatal-signal handler, inherited through fork, is not the worker's.
        signal(SIGABRT, SIG_DFL);
        child_enter_filter(report.write_end.get());
        std::abort();
    });
    report.write_end.reset();
    INFO("child " << describe(status) << "; it reported: " << read_all(report.read_end.get()));
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT));
}

// ---- jail ------------------------------------------------------------------------------

TEST_CASE("jail_worker confines a worker: chroot, nobody, no capabilities", "[sandbox][root]")
{
    if (!is_root()) {
        WARN("skipped: needs root");
        return;
    }
    const passwd* pw = nobody();
    if (!pw) {
        WARN("skipped: no user nobody");
        return;
    }
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    TempDir dir;

    HeldChild child([&](int out) {
        std::string error;
        if (!sniproxy::jail_worker(dir.path, { uid, gid, true }, error))
            child_fail(out, error);
        // Root's powers are gone (checked before seccomp, which forbids setuid outright).
        child_check(out, setuid(0) == -1 && errno == EPERM, "setuid(0) fails with EPERM");
        child_check(out, setgid(0) == -1 && errno == EPERM, "setgid(0) fails with EPERM");
        struct stat st;
        child_check(out, lstat("/etc", &st) == -1 && errno == ENOENT, "no /etc in the jail");
        child_check(out, lstat("/proc", &st) == -1 && errno == ENOENT, "no /proc in the jail");
        child_enter_filter(out);
    });
    REQUIRE(child.report() == "ready");

    const std::string status = read_file(child.proc("status"));
    const std::string ids = std::to_string(uid);
    CHECK(status_field(status, "Uid") == ids + "\t" + ids + "\t" + ids + "\t" + ids);
    const std::string gids = std::to_string(gid);
    CHECK(status_field(status, "Gid") == gids + "\t" + gids + "\t" + gids + "\t" + gids);
    CHECK(status_field(status, "Groups") == gids);
    for (const char* set : { "CapEff", "CapPrm", "CapInh", "CapAmb" }) {
        INFO(set);
        CHECK(status_field(status, set) == "0000000000000000");
    }
    CHECK(status_field(status, "NoNewPrivs") == "1");
    CHECK(status_field(status, "Seccomp") == "2");

    char root[PATH_MAX] = {};
    REQUIRE(readlink(child.proc("root").c_str(), root, sizeof root - 1) > 0);
    CHECK(std::string(root) == dir.path);
    char cwd[PATH_MAX] = {};
    REQUIRE(readlink(child.proc("cwd").c_str(), cwd, sizeof cwd - 1) > 0);
    CHECK(std::string(cwd) == dir.path);

    const int result = child.finish();
    INFO("child " << describe(result));
    CHECK((WIFEXITED(result) && WEXITSTATUS(result) == 0));
}

TEST_CASE("jail_worker reports the step that failed", "[sandbox]")
{
    const passwd* pw = nobody();
    if (!pw) {
        WARN("skipped: no user nobody");
        return;
    }
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    TempDir dir;

    // Runs jail_worker in a child (a success would jail the test process) and returns its
    // error line, or "succeeded".
    struct Jail {
        std::string dir;
        uid_t uid, gid;
    };
    auto jail_error = [](const Jail& config, bool as_nobody) {
        Pipe report;
        run_child([&] {
            const passwd* user = getpwnam("nobody");
            if (as_nobody && geteuid() == 0
                && (setresgid(user->pw_gid, user->pw_gid, user->pw_gid) != 0
                    || setresuid(user->pw_uid, user->pw_uid, user->pw_uid) != 0))
                return 1;
            std::string message;
            write_all(report.write_end.get(),
                sniproxy::jail_worker(config.dir, { config.uid, config.gid, true }, message)
                    ? "succeeded"
                    : message);
            return 0;
        });
        report.write_end.reset();
        return read_all(report.read_end.get());
    };

    SECTION("root is refused as the worker user")
    {
        CHECK(contains(jail_error({ dir.path, 0, gid }, false), "uid/gid 0"));
        CHECK(contains(jail_error({ dir.path, uid, 0 }, false), "uid/gid 0"));
    }
    SECTION("a missing hosts directory names chdir, the path and the errno")
    {
        const std::string missing = dir.path + "/missing";
        const std::string message = jail_error({ missing, uid, gid }, false);
        INFO(message);
        CHECK(contains(message, "chdir(" + missing + ")"));
        CHECK(contains(message, std::strerror(ENOENT)));
    }
    SECTION("without privileges the chroot step fails")
    {
        const std::string message = jail_error({ dir.path, uid, gid }, true);
        INFO(message);
        CHECK(contains(message, "chroot(" + dir.path + ")"));
        CHECK(contains(message, std::strerror(EPERM)));
    }
    SECTION("a hosts directory the worker user cannot search is reported")
    {
        if (!is_root()) {
            WARN("skipped: needs root");
            return;
        }
        REQUIRE(chmod(dir.path.c_str(), 0700) == 0);
        const std::string message = jail_error({ dir.path, uid, gid }, false);
        INFO(message);
        CHECK(contains(message, "not searchable by uid " + std::to_string(uid)));
        CHECK(contains(message, std::strerror(EACCES)));
    }
}

// ---- the parent ------------------------------------------------------------------------

TEST_CASE("parent_drop_capabilities keeps exactly four capabilities", "[sandbox][root]")
{
    if (!is_root()) {
        WARN("skipped: needs root");
        return;
    }
    const passwd* pw = nobody();
    REQUIRE(pw != nullptr);
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    TempDir dir;
    const char* separator = "\n=====\n";

    // The child drops, then reports: the `kept` text, its own status, whether a worker can
    // still jail itself with what is left, and the status of a program it execs (which must
    // not regain anything through exec).
    Pipe report;
    const int status = run_child([&] {
        const int out = report.write_end.get();
        std::string kept, error;
        if (!sniproxy::parent_drop_capabilities(kept, error))
            child_fail(out, "parent_drop_capabilities: " + error);
        write_all(out, kept + separator + read_file("/proc/self/status") + separator);
        const int jailed = fork_and_wait([&] {
            std::string message;
            return sniproxy::jail_worker(dir.path, { uid, gid, true }, message) ? 0 : 1;
        });
        write_all(out,
            std::string(WIFEXITED(jailed) && WEXITSTATUS(jailed) == 0 ? "jail ok" : "jail failed")
                + separator);
        if (dup2(out, STDOUT_FILENO) < 0)
            return 2;
        execl("/bin/cat", "cat", "/proc/self/status", static_cast<char*>(nullptr));
        return 3;
    });
    report.write_end.reset();
    const std::string text = read_all(report.read_end.get());
    INFO("child " << describe(status) << "; it reported:\n" << text);
    REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));

    std::vector<std::string> parts;
    for (std::size_t start = 0;;) {
        const std::size_t end = text.find(separator, start);
        parts.push_back(text.substr(start, end - start));
        if (end == std::string::npos)
            break;
        start = end + std::strlen(separator);
    }
    REQUIRE(parts.size() == 4);
    CHECK(parts[0] == "cap_kill,cap_setgid,cap_setuid,cap_sys_chroot=ep");
    CHECK(parts[2] == "jail ok");
    const std::string mask = hex_mask(parent_caps_mask);
    for (const std::string* proc : { &parts[1], &parts[3] }) {
        INFO((proc == &parts[1] ? "the parent itself" : "a program it execs"));
        CHECK(status_field(*proc, "CapEff") == mask);
        CHECK(status_field(*proc, "CapPrm") == mask);
        CHECK(status_field(*proc, "CapBnd") == mask);
        CHECK(status_field(*proc, "CapInh") == "0000000000000000");
        CHECK(status_field(*proc, "CapAmb") == "0000000000000000");
        CHECK(status_field(*proc, "NoNewPrivs") == "1");
    }
}

TEST_CASE("a confined parent still starts programs from its own directory, and little else",
    "[sandbox][parent]")
{
    TempDir dir;
    const std::string exe = running_executable();
    REQUIRE(!exe.empty());
    Pipe report;
    const int status = run_child([&] {
        const int out = report.write_end.get();
        std::string error;
        if (!confine_parent(exe, dir.path, "", "", &error))
            child_fail(out, "confine_parent: " + error);
        // What the parent needs: channels, and exec of its own binary (workers, SIGUSR2).
        int sv[2];
        child_check(
            out, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        const int self_exec = fork_and_wait([&] {
            const int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, STDOUT_FILENO);
            setenv("ASAN_OPTIONS", "detect_leaks=0", 1); // LSan could not stop the world here
            execl("/proc/self/exe", "sandbox_test", "--help", static_cast<char*>(nullptr));
            return 126;
        });
        child_check(out, WIFEXITED(self_exec) && WEXITSTATUS(self_exec) == 0, "exec of itself");
        // What it must not: new network sockets, ptrace, bpf (seccomp, EPERM) ...
        child_check(out, socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM, "no TCP socket");
        child_check(out, socket(AF_INET6, SOCK_DGRAM, 0) < 0 && errno == EPERM, "no UDP socket");
#ifndef WITH_SANITIZERS // LeakSanitizer needs ptrace in the parent
        child_check(
            out, syscall(SYS_ptrace, 0 /* TRACEME */, 0, 0, 0) < 0 && errno == EPERM, "no ptrace");
#endif
        child_check(out, syscall(SYS_bpf, 0, nullptr, 0) < 0 && errno == EPERM, "no bpf");
        // Of the TCP-level options it reads TCP_INFO (the accept queue) and nothing else.
        tcp_info info {};
        socklen_t len = sizeof info;
        child_check(out,
            getsockopt(sv[0], IPPROTO_TCP, TCP_INFO, &info, &len) == 0 || errno != EPERM,
            "TCP_INFO allowed");
        char name[16];
        len = sizeof name;
        child_check(out,
            getsockopt(sv[0], IPPROTO_TCP, TCP_CONGESTION, name, &len) < 0 && errno == EPERM,
            "no other TCP getsockopt");
        child_check(out, syscall(SYS_unshare, CLONE_NEWNET) < 0 && errno == EPERM, "no unshare");
        // ... and, where the kernel has Landlock, files outside its short list.
        if (syscall(SYS_landlock_create_ruleset, nullptr, 0, 1) > 0) {
            child_check(out, open("/etc/hostname", O_RDONLY) < 0 && errno == EACCES, "no /etc");
            child_check(out,
                open((dir.path + "/../sniproxyd-test-new").c_str(), O_CREAT | O_WRONLY, 0644) < 0,
                "no new files");
            const int other_exec = fork_and_wait([&] {
                execl("/bin/true", "true", static_cast<char*>(nullptr));
                return errno == EACCES ? 0 : 1;
            });
            child_check(out, WIFEXITED(other_exec) && WEXITSTATUS(other_exec) == 0, "no /bin/true");
        }
        return 0;
    });
    report.write_end.reset();
    INFO("child " << describe(status) << "; it reported: " << read_all(report.read_end.get()));
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
}
