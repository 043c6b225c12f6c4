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
    // Room to see (and close) more descriptors than a message may carry.
    constexpr std::size_t max_fds = max_handover + 4;
} // namespace

int send_message_with_fds(
    int channel, Msg type, std::span<const std::uint8_t> payload, std::span<const int> fds)
{
    if (fds.size() > max_handover)
        return EINVAL;
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
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_handover)] = {};
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
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

    // One connection's record in the payload: the accept time, then the peer's sockaddr_in or
    // sockaddr_in6 zero-padded (family AF_UNSPEC when unknown).
    constexpr std::size_t address_room = sizeof(sockaddr_in6);
    constexpr std::size_t record_size = sizeof(std::int64_t) + address_room;
    static_assert(record_size * max_handover < max_message);
} // namespace

int send_connections(int channel, std::span<const int> fds, std::span<const ConnectionInfo> infos)
{
    if (fds.empty() || fds.size() > max_handover || fds.size() != infos.size())
        return EINVAL;
    std::uint8_t payload[record_size * max_handover] = {};
    for (std::size_t i = 0; i < infos.size(); i++) {
        std::uint8_t* r = payload + i * record_size;
        std::memcpy(r, &infos[i].accepted_ns, sizeof infos[i].accepted_ns);
        std::memcpy(r + sizeof infos[i].accepted_ns, &infos[i].peer, address_size(infos[i].peer));
    }
    return send_message_with_fds(
        channel, Msg::connection, { payload, record_size * fds.size() }, fds);
}

int send_connection(int channel, int client_fd, const ConnectionInfo& info)
{
    return send_connections(channel, { &client_fd, 1 }, { &info, 1 });
}

std::size_t connections_in(const Received& m)
{
    return m.type == Msg::connection ? std::min(m.payload_len / record_size, max_handover) : 0;
}

bool parse_connections(const Received& m, std::span<ConnectionInfo> out)
{
    if (m.type != Msg::connection || m.nfds == 0 || out.size() < m.nfds
        || m.payload_len != m.nfds * record_size)
        return false;
    for (std::size_t i = 0; i < m.nfds; i++) {
        const std::uint8_t* r = m.payload + i * record_size;
        ConnectionInfo& info = out[i];
        info = {};
        std::memcpy(&info.accepted_ns, r, sizeof info.accepted_ns);
        std::memcpy(&info.peer, r + sizeof info.accepted_ns, address_room);
        const std::size_t used = address_size(info.peer);
        if (used == 0 && info.peer.ss_family != AF_UNSPEC)
            return false; // a family we never send
        // The padding after the address must be zero, as we send it.
        for (std::size_t b = used; b < address_room; b++)
            if (r[sizeof info.accepted_ns + b] != 0)
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
    return send_message_with_fds(channel, type, payload, {});
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
    // The type and payload are kept even for an invalid message, so that the receiver can
    // tell how many connections a broken connection message stood for (connections_in).
    out.type = static_cast<Msg>(buf[0]);
    out.payload_len = std::min(static_cast<std::size_t>(n) - 1, max_message);
    std::memcpy(out.payload, buf + 1, out.payload_len);
    if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC) || static_cast<std::size_t>(n) > max_message)
        return Recv::invalid;
    const bool wants_fds = out.type == Msg::connection;
    if (wants_fds ? nfds == 0 || nfds > max_handover : nfds != 0)
        return Recv::invalid;
    out.nfds = nfds;
    for (std::size_t i = 0; i < nfds; i++)
        out.fds[i] = std::move(fds[i]);
    return Recv::message;
}

std::int64_t monotonic_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t { ts.tv_sec } * 1000000000 + ts.tv_nsec;
}

} // namespace sniproxy
