// channel.cc: sendmsg/recvmsg with SCM_RIGHTS for the worker channel.
#include "channel.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace sniproxy {

namespace {
    constexpr std::size_t max_fds = 4; // room to see (and close) fds a peer should not send
} // namespace

int send_message_with_fd(int channel, Msg type, std::span<const std::uint8_t> payload, int fd)
{
    if (payload.size() + 1 > max_message)
        return EMSGSIZE;
    std::uint8_t buf[max_message];
    buf[0] = static_cast<std::uint8_t>(type);
    if (!payload.empty()) // memcpy from a null pointer is undefined even for 0 bytes
        std::memcpy(buf + 1, payload.data(), payload.size());
    iovec iov { buf, payload.size() + 1 };
    msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    for (;;) {
        if (sendmsg(channel, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

namespace {
    std::size_t address_size(const sockaddr_storage& a)
    {
        switch (a.ss_family) {
        case AF_INET:
            return sizeof(sockaddr_in);
        case AF_INET6:
            return sizeof(sockaddr_in6);
        default:
            return 0;
        }
    }
} // namespace

// Payload: the accept time (8 bytes), then the peer's sockaddr_in or sockaddr_in6, if known.
int send_connection(int channel, int client_fd, const ConnectionInfo& info)
{
    std::uint8_t payload[sizeof info.accepted_ns + sizeof info.peer];
    std::memcpy(payload, &info.accepted_ns, sizeof info.accepted_ns);
    const std::size_t peer_len = address_size(info.peer);
    std::memcpy(payload + sizeof info.accepted_ns, &info.peer, peer_len);
    return send_message_with_fd(
        channel, Msg::connection, { payload, sizeof info.accepted_ns + peer_len }, client_fd);
}

bool parse_connection(const Received& m, ConnectionInfo& out)
{
    out = {};
    if (m.type != Msg::connection || m.payload_len < sizeof out.accepted_ns)
        return false;
    std::memcpy(&out.accepted_ns, m.payload, sizeof out.accepted_ns);
    const std::size_t peer_len = m.payload_len - sizeof out.accepted_ns;
    if (peer_len == 0)
        return true;
    if (peer_len > sizeof out.peer)
        return false;
    std::memcpy(&out.peer, m.payload + sizeof out.accepted_ns, peer_len);
    if (address_size(out.peer) != peer_len) { // a family that does not match the length
        out.peer = {};
        return false;
    }
    return true;
}

int send_messages(int channel, std::span<const Outgoing> messages)
{
    const std::size_t n = std::min(messages.size(), max_batch);
    std::uint8_t types[max_batch];
    iovec iov[max_batch][2];
    mmsghdr msgs[max_batch] = {};
    for (std::size_t i = 0; i < n; i++) {
        if (messages[i].payload.size() + 1 > max_message) {
            errno = EMSGSIZE;
            return -1;
        }
        types[i] = static_cast<std::uint8_t>(messages[i].type);
        iov[i][0] = { &types[i], 1 };
        iov[i][1]
            = { const_cast<std::uint8_t*>(messages[i].payload.data()), messages[i].payload.size() };
        msgs[i].msg_hdr.msg_iov = iov[i];
        msgs[i].msg_hdr.msg_iovlen = 2;
    }
    for (;;) {
        const int sent
            = sendmmsg(channel, msgs, static_cast<unsigned>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent >= 0)
            return sent;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

int send_message(int channel, Msg type, std::span<const std::uint8_t> payload)
{
    return send_message_with_fd(channel, type, payload, -1);
}

Recv receive_message(int channel, Received& out)
{
    std::uint8_t buf[max_message + 1];
    iovec iov { buf, sizeof buf };
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do
        n = recvmsg(channel, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? Recv::again : Recv::error;
    if (n == 0)
        return Recv::eof;

    // Take ownership of every descriptor first, so none leaks whatever happens next.
    UniqueFd fds[max_fds];
    std::size_t nfds = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count && nfds < max_fds; i++) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            fds[nfds++].reset(fd);
        }
    }
    if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC) || static_cast<std::size_t>(n) > max_message)
        return Recv::invalid;

    out.type = static_cast<Msg>(buf[0]);
    out.payload_len = static_cast<std::size_t>(n) - 1;
    std::memcpy(out.payload, buf + 1, out.payload_len);
    const bool wants_fd = out.type == Msg::connection;
    if (nfds != (wants_fd ? 1u : 0u))
        return Recv::invalid;
    if (wants_fd)
        out.fd = std::move(fds[0]);
    return Recv::message;
}

std::int64_t monotonic_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t { ts.tv_sec } * 1000000000 + ts.tv_nsec;
}

} // namespace sniproxy
