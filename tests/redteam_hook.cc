// redteam_hook.cc: the attempts a hijacked worker would make (see redteam_hook.h and
// tests/e2e/redteam_test.py). Targets come from SNIPROXYD_REDTEAM_* variables, which only
// the red-team build passes to workers.
#include "redteam_hook.h"

#include "channel.h"
#include "log.h"
#include "protocol.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sniproxy {

namespace {

    std::string setting(const char* name)
    {
        const char* v = std::getenv(name);
        return v ? v : "";
    }

    void report(const std::string& name, bool succeeded, const std::string& how)
    {
        logf(LogLevel::notice, "redteam: %s: %s (%s)", name.c_str(),
            succeeded ? "SUCCEEDED" : "blocked", how.c_str());
    }

    void outcome(const std::string& name, long rc, const char* call)
    {
        if (rc < 0)
            report(name, false, errno_message(call, errno));
        else
            report(name, true, std::string(call) + " returned " + std::to_string(rc));
    }

    // connect(AF_UNSPEC) drops the client's peer; then the socket is ours to aim elsewhere.
    void tcp_reconnect(const std::string& name, int client_fd)
    {
        sockaddr unspec {};
        unspec.sa_family = AF_UNSPEC;
        if (connect(client_fd, &unspec, sizeof unspec) != 0)
            return outcome(name, -1, "connect(AF_UNSPEC)");
        const int flags = fcntl(client_fd, F_GETFL);
        fcntl(client_fd, F_SETFL, flags & ~O_NONBLOCK);
        sockaddr_in to {};
        to.sin_family = AF_INET;
        to.sin_port
            = htons(static_cast<uint16_t>(std::atoi(setting("SNIPROXYD_REDTEAM_PORT").c_str())));
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(client_fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
            return outcome(name, -1, "connect(127.0.0.1)");
        outcome(name, write(client_fd, "pwned\n", 6), "connect+write");
    }

    void unix_connect(const std::string& name, const std::string& path, bool abstract)
    {
        const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sun {};
        sun.sun_family = AF_UNIX;
        const std::size_t off = abstract ? 1 : 0; // abstract: a leading NUL, no file
        std::memcpy(
            sun.sun_path + off, path.data(), std::min(path.size(), sizeof sun.sun_path - 1 - off));
        const socklen_t len
            = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + off + path.size());
        if (connect(fd, reinterpret_cast<sockaddr*>(&sun), len) != 0)
            return outcome(name, -1, "connect");
        outcome(name, write(fd, "pwned\n", 6), "connect+write");
    }

    // The worker's end of its channel: spawn.cc puts it at descriptor 3.
    constexpr int channel_fd = 3;

    // Lies on the channel: the parent must treat each as a protocol violation and replace the
    // worker (it logs "protocol violation" and SIGKILLs it; the hook never sees the end).
    void channel_lie(const std::string& name, int client_fd)
    {
        int rc = -1;
        if (name == "channel-count") { // closing connections the parent never handed over
            ClosedMsg lie;
            lie.count = 3;
            lie.ids[0] = 0xfffffff0;
            lie.ids[1] = 0xfffffff1;
            lie.ids[2] = 0xfffffff2;
            rc = send(channel_fd, encode(lie));
        } else if (name == "channel-unexpected") { // a parent-only message from a worker
            rc = send(channel_fd, encode(DrainMsg { 0 }));
        } else if (name == "channel-fds") { // a descriptor on a message that carries none
            const Encoded e = encode(LogMsg { LogLevel::info, "with a descriptor" });
            const int fds[] = { client_fd };
            rc = send_message(channel_fd, e.type, e.bytes(), fds);
        } else if (name == "channel-moving-pipe" || name == "channel-moving-id") {
            // Hand over a "connection": a pipe where the client's socket belongs, or the
            // right kinds of descriptor under an id never handed to this worker.
            MovingMsg lie;
            lie.id = 0xfffffff0;
            lie.peer.ss_family = lie.source.ss_family = AF_UNSPEC;
            int p[2] = { -1, -1 };
            if (pipe2(p, O_CLOEXEC) != 0)
                return outcome(name, -1, "pipe2");
            const int unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            const int fds[] = { name == "channel-moving-pipe" ? p[0] : client_fd, unix_fd };
            Encoded e;
            std::string err;
            if (encode_moving(lie, &e, &err))
                rc = send_moving(channel_fd, e, fds);
        }
        report(name, false, "sent: " + std::to_string(rc) + "; the parent decides");
    }
} // namespace

bool redteam_attack(std::string_view sni, int client_fd)
{
    constexpr std::string_view prefix = "attack-", suffix = ".redteam";
    if (!sni.starts_with(prefix) || !sni.ends_with(suffix))
        return false;
    const std::string name(sni.substr(prefix.size(), sni.size() - prefix.size() - suffix.size()));
    logf(LogLevel::notice, "redteam: %s: trying", name.c_str());
    if (name == "tcp-reconnect")
        tcp_reconnect(name, client_fd);
    else if (name == "tcp-socket")
        outcome(name, socket(AF_INET, SOCK_STREAM, 0), "socket(AF_INET, SOCK_STREAM)");
    else if (name == "udp-socket")
        outcome(name, socket(AF_INET, SOCK_DGRAM, 0), "socket(AF_INET, SOCK_DGRAM)");
    else if (name == "abstract-unix")
        unix_connect(name, setting("SNIPROXYD_REDTEAM_ABSTRACT"), true);
    else if (name == "unix-outside")
        unix_connect(name, setting("SNIPROXYD_REDTEAM_UNIX"), false);
    else if (name == "open-outside")
        outcome(name, open(setting("SNIPROXYD_REDTEAM_FILE").c_str(), O_RDONLY), "open");
    else if (name == "read-hosts-file")
        outcome(name, open("secret", O_RDONLY), "open(hosts/secret)");
    else if (name == "write-hosts-file")
        outcome(name, open("planted", O_WRONLY | O_CREAT, 0644), "open(hosts/planted, O_CREAT)");
    else if (name == "exec")
        outcome(name, execl("/bin/sh", "sh", "-c", "true", static_cast<char*>(nullptr)), "execve");
    else if (name == "fork")
        outcome(name, fork(), "fork");
    else if (name == "ptrace")
        outcome(name,
            ptrace(PTRACE_ATTACH, std::atoi(setting("SNIPROXYD_REDTEAM_TARGET").c_str()), 0, 0),
            "ptrace");
    else if (name == "bpf")
        outcome(name, syscall(SYS_bpf, 0, nullptr, 0), "bpf");
    else if (name == "io-uring")
        outcome(name, syscall(SYS_io_uring_setup, 1, nullptr), "io_uring_setup");
    else if (name == "kill")
        outcome(name, kill(std::atoi(setting("SNIPROXYD_REDTEAM_TARGET").c_str()), 0), "kill");
    else if (name == "tcp-ulp")
        outcome(name, setsockopt(client_fd, IPPROTO_TCP, TCP_ULP, "tls", 3), "setsockopt(TCP_ULP)");
    else if (name == "stdio") {
        const char forged[] = "sniproxyd[1]: REDTEAM-FORGED client=198.51.100.7:1 result=ok\n";
        for (int fd = 0; fd <= 2; fd++)
            if (write(fd, forged, sizeof forged - 1) < 0)
                return outcome(name, -1, "write"), true;
        report(name, false,
            "write to fds 0-2 returned, bytes went to /dev/null unless the daemon's output shows "
            "them");
    } else if (name.starts_with("channel-")) {
        channel_lie(name, client_fd);
    } else if (name == "log-flood-channel") {
        // Straight onto the channel, past the worker's own bounded queue: only the parent's
        // per-worker limit stands in the way.
        const Encoded e = encode(LogMsg { LogLevel::notice, "redteam: direct flood" });
        int sent = 0;
        for (int i = 0; i < 200000; i++) {
            pollfd p { channel_fd, POLLOUT, 0 };
            int err;
            while ((err = send(channel_fd, e)) == EAGAIN)
                poll(&p, 1, 100);
            if (err != 0)
                break;
            sent++;
        }
        report(name, false, std::to_string(sent) + " records written to the channel");
    } else if (name == "log-flood") {
        for (int i = 0; i < 100000; i++)
            logf(LogLevel::notice, "redteam: flood %d", i);
        report(name, false, "100000 records sent: the parent decides what reaches the log");
    } else
        report(name, false, "no such attack");
    return true;
}

} // namespace sniproxy
