// channel.cc: sendmsg/recvmsg with SCM_RIGHTS for the worker channel; no message semantics.
#include "channel.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace sniproxy {

namespace {
    // Room to see (and close) more descriptors than a message may carry.
    constexpr std::size_t max_fds = max_fds_per_message + 4;
} // namespace

int send_message(
    int channel, Msg type, std::span<const std::uint8_t> payload, std::span<const int> fds)
{
    if (fds.size() > max_fds_per_message)
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
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds_per_message)] = {};
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
    out.type = static_cast<Msg>(buf[0]);
    out.payload_len = std::min(static_cast<std::size_t>(n) - 1, max_message);
    std::memcpy(out.payload, buf + 1, out.payload_len);
    out.nfds = std::min(nfds, max_fds_per_message);
    for (std::size_t i = 0; i < out.nfds; i++)
        out.fds[i] = std::move(fds[i]);
    out.fds_truncated = (msg.msg_flags & MSG_CTRUNC) != 0 || nfds > max_fds_per_message;
    if (msg.msg_flags & MSG_TRUNC || static_cast<std::size_t>(n) > max_message
        || out.fds_truncated)
        return Recv::invalid;
    return Recv::message;
}

std::int64_t monotonic_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t { ts.tv_sec } * 1000000000 + ts.tv_nsec;
}

} // namespace sniproxy
