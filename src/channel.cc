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

namespace {
    // Where one record lands: the type byte into out.type, the payload straight into
    // out.payload. One byte more than a valid record may hold, so that an oversized one shows.
    struct Landing {
        iovec iov[2];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    };

    void prepare(Received& out, Landing& l, msghdr& msg)
    {
        for (std::size_t i = 0; i < out.nfds; i++)
            out.fds[i].reset();
        out.nfds = 0;
        out.fds_truncated = false;
        l.iov[0] = { &out.type, 1 };
        l.iov[1] = { out.payload, max_message };
        msg = {};
        msg.msg_iov = l.iov;
        msg.msg_iovlen = 2;
        msg.msg_control = l.control;
        msg.msg_controllen = sizeof l.control;
    }

    // Calls f(fd) for every descriptor that came with `msg`.
    template <typename F> void each_fd(const msghdr& msg, F&& f)
    {
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; i++) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                f(fd);
            }
        }
    }

    // One record of n > 0 bytes received into `out` through `msg`: takes every descriptor
    // first, so none leaks whatever happens next, then says whether the record fit.
    Recv take(const msghdr& msg, std::size_t n, Received& out)
    {
        UniqueFd fds[max_fds];
        std::size_t nfds = 0;
        each_fd(msg, [&](int fd) {
            if (nfds < max_fds) // the control buffer holds no more than max_fds
                fds[nfds++].reset(fd);
            else
                UniqueFd closing(fd);
        });
        out.payload_len = std::min(n - 1, max_message);
        out.nfds = std::min(nfds, max_fds_per_message);
        for (std::size_t i = 0; i < out.nfds; i++)
            out.fds[i] = std::move(fds[i]);
        out.fds_truncated = (msg.msg_flags & MSG_CTRUNC) != 0 || nfds > max_fds_per_message;
        if (msg.msg_flags & MSG_TRUNC || n > max_message || out.fds_truncated)
            return Recv::invalid;
        return Recv::message;
    }

    // A record of no bytes reads as the end of file, but a peer can attach descriptors to
    // one: they are ours now, and closed.
    void close_fds(const msghdr& msg)
    {
        each_fd(msg, [](int fd) { UniqueFd closing(fd); });
    }

    Recv failed(int err)
    {
        return err == EAGAIN || err == EWOULDBLOCK ? Recv::again : Recv::error;
    }
} // namespace

Recv receive_message(int channel, Received& out)
{
    Landing l;
    msghdr msg;
    prepare(out, l, msg);
    ssize_t n;
    do
        n = recvmsg(channel, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return failed(errno);
    if (n == 0) {
        close_fds(msg);
        return Recv::eof;
    }
    return take(msg, static_cast<std::size_t>(n), out);
}

struct ReceiveBatch::Landings {
    Landing at[max_receive_batch];
    mmsghdr msgs[max_receive_batch];
};

ReceiveBatch::ReceiveBatch()
    : landings_(std::make_unique<Landings>())
{
}

ReceiveBatch::~ReceiveBatch() = default;

void ReceiveBatch::release()
{
    for (std::size_t i = 0; i < count; i++)
        for (std::size_t k = 0; k < messages[i].nfds; k++)
            messages[i].fds[k].reset();
}

void receive_messages(int channel, ReceiveBatch& batch)
{
    batch.release();
    batch.count = 0;
    ReceiveBatch::Landings& l = *batch.landings_;
    for (std::size_t i = 0; i < max_receive_batch; i++)
        prepare(batch.messages[i], l.at[i], l.msgs[i].msg_hdr);
    int got;
    do
        got = recvmmsg(channel, l.msgs, max_receive_batch, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, nullptr);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        batch.end = failed(errno);
        return;
    }
    batch.end = static_cast<std::size_t>(got) < max_receive_batch ? Recv::again : Recv::message;
    // recvmmsg does not stop at a record of no bytes (the end of file, or a peer's empty
    // one), so every record it returned is gone through, those after it closed unread.
    for (std::size_t i = 0; i < static_cast<std::size_t>(got); i++) {
        const std::size_t n = l.msgs[i].msg_len;
        if (n == 0 || batch.end == Recv::eof) { // what came before it still counts
            batch.end = Recv::eof;
            close_fds(l.msgs[i].msg_hdr);
            continue;
        }
        batch.results[i] = take(l.msgs[i].msg_hdr, n, batch.messages[i]);
        batch.count = i + 1;
    }
}

std::int64_t monotonic_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t { ts.tv_sec } * 1000000000 + ts.tv_nsec;
}

} // namespace sniproxy
