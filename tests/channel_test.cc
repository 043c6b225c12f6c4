// channel_test.cc: the parent<->worker protocol on a real socketpair, including what a
// misbehaving peer could send.
#include "catch.h"
#include "channel.h"
#include "channel_peer.h"
#include "protocol.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

using namespace sniproxy;
using namespace sniproxy::test;

namespace {
struct Pair {
    UniqueFd a, b;
    Pair()
    {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        a.reset(sv[0]);
        b.reset(sv[1]);
    }
};

// A record of no bytes with these descriptors, which send_message never makes (hence this
// copy of its control-message set-up).
void send_empty(int channel, std::span<const int> fds)
{
    char byte[1] = {};
    iovec iov { byte, 0 };
    msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds_per_message)] = {};
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    REQUIRE(sendmsg(channel, &msg, MSG_DONTWAIT) == 0);
}

std::size_t open_fds()
{
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
        n++;
    return n;
}

// A worker's records: one of zero bytes (which reads as the end of file) first, then more,
// every one with a handful of descriptors.
void send_empty_then_more(int channel, std::size_t more)
{
    UniqueFd null(open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(null);
    const int fds[] = { null.get(), null.get(), null.get(), null.get() };
    send_empty(channel, fds);
    const std::uint8_t rec[] = { 'x' };
    for (std::size_t i = 0; i < more; i++)
        REQUIRE(send_message_with_fds(channel, Msg::log, rec, fds) == 0);
}

bool same_file(int x, int y)
{
    struct stat sx, sy;
    return fstat(x, &sx) == 0 && fstat(y, &sy) == 0 && sx.st_ino == sy.st_ino
        && sx.st_dev == sy.st_dev;
}
} // namespace

TEST_CASE("a connection message carries its descriptor, timestamp and client address")
{
    Pair p;
    UniqueFd file(open("/dev/null", O_RDONLY | O_CLOEXEC));
    ConnectionInfo sent;
    sent.accepted_ns = 123456789;
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sent.peer);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(50123);
    inet_pton(AF_INET6, "2001:db8::7", &in6->sin6_addr);
    REQUIRE(send_connection(p.a.get(), file.get(), sent) == 0);
    Received m;
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK(m.type == Msg::connection);
    ConnectionInfo got[max_handover];
    REQUIRE(parse_connections(m, got));
    CHECK(got[0].accepted_ns == 123456789);
    CHECK(std::memcmp(&got[0].peer, &sent.peer, sizeof(sockaddr_in6)) == 0);
    REQUIRE(m.nfds == 1);
    CHECK(same_file(m.fds[0].get(), file.get()));
    CHECK((fcntl(m.fds[0].get(), F_GETFD) & FD_CLOEXEC)); // MSG_CMSG_CLOEXEC
    CHECK(receive_message(p.b.get(), m) == Recv::again);
}

TEST_CASE("connections accepted together travel in one message, each with its own info")
{
    Pair p;
    UniqueFd files[max_handover];
    int fds[max_handover];
    ConnectionInfo infos[max_handover];
    for (std::size_t i = 0; i < max_handover; i++) {
        files[i].reset(open(i % 2 ? "/dev/null" : "/dev/zero", O_RDONLY | O_CLOEXEC));
        fds[i] = files[i].get();
        infos[i].accepted_ns = static_cast<std::int64_t>(1000 + i);
        auto* in = reinterpret_cast<sockaddr_in*>(&infos[i].peer);
        if (i != 3) { // one without an address
            in->sin_family = AF_INET;
            in->sin_port = htons(static_cast<std::uint16_t>(40000 + i));
        }
    }
    REQUIRE(send_connections(p.a.get(), fds, infos) == 0);
    Received m;
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    REQUIRE(m.nfds == max_handover);
    ConnectionInfo got[max_handover];
    REQUIRE(parse_connections(m, got));
    for (std::size_t i = 0; i < max_handover; i++) {
        CHECK(same_file(m.fds[i].get(), files[i].get()));
        CHECK(got[i].accepted_ns == static_cast<std::int64_t>(1000 + i));
        if (i == 3) {
            CHECK(got[i].peer.ss_family == AF_UNSPEC);
        } else {
            CHECK(ntohs(reinterpret_cast<sockaddr_in*>(&got[i].peer)->sin_port) == 40000 + i);
        }
    }
    // More than a message may carry, or counts that disagree: refused before sending.
    int too_many[max_handover + 1] = {};
    ConnectionInfo info_too_many[max_handover + 1];
    CHECK(send_connections(p.a.get(), too_many, info_too_many) == EINVAL);
    CHECK(send_connections(p.a.get(), { fds, 2 }, { infos, 1 }) == EINVAL);
    CHECK(send_connections(p.a.get(), {}, {}) == EINVAL);
}

TEST_CASE("connection payloads must describe exactly the descriptors that came")
{
    Pair p;
    UniqueFd a(open("/dev/null", O_RDONLY | O_CLOEXEC)), b(open("/dev/null", O_RDONLY | O_CLOEXEC));
    const int two[] = { a.get(), b.get() };
    ConnectionInfo infos[max_handover];
    // A record: accept time (8 bytes), id (4), flags (4), address (28).
    std::uint8_t one_record[44] = {};
    // Two descriptors, one record: the descriptors arrive and are closed with the message.
    REQUIRE(send_message_with_fds(p.a.get(), Msg::connection, one_record, two) == 0);
    Received m;
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK(m.nfds == 2);
    CHECK_FALSE(parse_connections(m, infos));
    // A family we never send.
    std::uint8_t bad_family[44] = {};
    bad_family[16] = 99;
    REQUIRE(send_message_with_fds(p.a.get(), Msg::connection, bad_family, { two, 1 }) == 0);
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK_FALSE(parse_connections(m, infos));
    // Junk after an IPv4 address.
    std::uint8_t junk[44] = {};
    junk[16] = AF_INET;
    junk[43] = 1;
    REQUIRE(send_message_with_fds(p.a.get(), Msg::connection, junk, { two, 1 }) == 0);
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK_FALSE(parse_connections(m, infos));
    // Flags other than "from a balancer".
    std::uint8_t flags[44] = {};
    flags[12] = 2;
    flags[16] = AF_INET;
    REQUIRE(send_message_with_fds(p.a.get(), Msg::connection, flags, { two, 1 }) == 0);
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK_FALSE(parse_connections(m, infos));
    // A connection message without any descriptor is refused outright; it still says how
    // many connections the sender counted, so the worker can report them ended.
    std::uint8_t three_records[3 * 44] = {};
    three_records[44 + 8] = 7; // the second one's id
    REQUIRE(send_message(p.a.get(), Msg::connection, three_records) == 0);
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK_FALSE(parse_connections(m, infos));
    IdList ids;
    CHECK(connections_in(m, &ids) == 3);
    CHECK(ids.count == 3);
    CHECK(ids.ids[1] == 7);
    // Not a connection message.
    Received log;
    log.type = Msg::log;
    CHECK_FALSE(parse_connections(log, infos));
}

TEST_CASE("a batch of messages leaves in order with one call; a full channel takes part of it")
{
    Pair p;
    const std::uint8_t a[] = { 6, 'a' }, b[] = { 6, 'b', 'b' }, closed[] = { 3, 0, 0, 0 };
    const Outgoing batch[] = { { Msg::log, a }, { Msg::log, b }, { Msg::closed, closed } };
    REQUIRE(send_messages(p.a.get(), batch) == 3);
    Received m;
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK((m.type == Msg::log && m.payload_len == 2 && m.payload[1] == 'a'));
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK((m.type == Msg::log && m.payload_len == 3 && m.payload[2] == 'b'));
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK((m.type == Msg::closed && m.payload_len == 4 && m.payload[0] == 3));
    CHECK(receive_message(p.b.get(), m) == Recv::again);

    // Fill the channel: the batch is cut where it filled, and nothing is sent twice.
    std::vector<std::uint8_t> big(max_message - 1, 'x');
    std::vector<Outgoing> many(max_batch, Outgoing { Msg::log, big });
    int total = 0;
    for (int i = 0; i < 1000; i++) {
        const int sent = send_messages(p.a.get(), many);
        REQUIRE(sent >= 0);
        total += sent;
        if (sent < static_cast<int>(many.size()))
            break;
    }
    CHECK(send_messages(p.a.get(), many) == 0); // full
    int received = 0;
    while (receive_message(p.b.get(), m) == Recv::message)
        received++;
    CHECK(received == total);
}

TEST_CASE("plain messages, end of file")
{
    Pair p;
    const std::uint8_t payload[] = { 6, 'h', 'i' };
    REQUIRE(send_message(p.a.get(), Msg::log, payload) == 0);
    Received m;
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK(m.type == Msg::log);
    CHECK(m.payload_len == 3);
    CHECK(m.nfds == 0);
    p.a.reset();
    CHECK(receive_message(p.b.get(), m) == Recv::eof);
}

TEST_CASE("a descriptor where none belongs is closed, and a missing one is refused")
{
    Pair p;
    // A "log" message carrying an fd: invalid, and the fd must not leak.
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const std::uint8_t hi[] = { 6, 'h', 'i' };
    REQUIRE(send_message_with_fds(p.a.get(), Msg::log, hi, { &devnull, 1 }) == 0);
    close(devnull);

    const int next_free = open("/dev/null", O_RDONLY | O_CLOEXEC);
    close(next_free);
    {
        Received m;
        CHECK(receive_message(p.b.get(), m) == Recv::message);
        FromWorker msg;
        std::string err;
        CHECK_FALSE(decode_from_worker(m, &msg, &err));
        CHECK(err.find("descriptor") != std::string::npos);
    }
    // The received descriptor was closed with the refused message: the lowest free number
    // is the same as before.
    const int again = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(again == next_free);
    close(again);

    // A connection message without a descriptor.
    Received m;
    REQUIRE(send_message(p.a.get(), Msg::connection, {}) == 0);
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    FromParent msg;
    std::string err;
    CHECK_FALSE(decode_from_parent(m, &msg, &err));
}

TEST_CASE("oversized messages are refused on both ends")
{
    Pair p;
    std::uint8_t big[max_message + 10] = {};
    CHECK(send_message(p.a.get(), Msg::log, big) == EMSGSIZE);
    big[0] = 'L';
    REQUIRE(send(p.a.get(), big, sizeof big, 0) == static_cast<ssize_t>(sizeof big));
    Received m;
    CHECK(receive_message(p.b.get(), m) == Recv::invalid);
}

TEST_CASE("a batch is read with one call, and each of its messages is checked alone")
{
    Pair p;
    const std::uint8_t hi[] = { 6, 'h', 'i' }, closed[] = { 3, 0, 0, 0 };
    REQUIRE(send_message(p.a.get(), Msg::log, hi) == 0);
    // A log record carrying a descriptor: decoding refuses it, and the batch closes it.
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(send_message_with_fds(p.a.get(), Msg::log, hi, { &devnull, 1 }) == 0);
    close(devnull);
    std::uint8_t big[max_message + 10] = { 'L' };
    REQUIRE(send(p.a.get(), big, sizeof big, 0) == static_cast<ssize_t>(sizeof big));
    REQUIRE(send_message(p.a.get(), Msg::closed, closed) == 0);

    const int next_free = open("/dev/null", O_RDONLY | O_CLOEXEC);
    close(next_free);
    ReceiveBatch batch;
    receive_messages(p.b.get(), batch);
    REQUIRE(batch.count == 4);
    CHECK(batch.end == Recv::again);
    CHECK((batch.results[0] == Recv::message && batch.messages[0].type == Msg::log
        && batch.messages[0].payload_len == 3 && batch.messages[0].nfds == 0));
    CHECK(batch.results[1] == Recv::message);
    CHECK(batch.messages[1].nfds == 1);
    FromWorker msg;
    std::string err;
    CHECK(decode_from_worker(batch.messages[0], &msg, &err));
    CHECK_FALSE(decode_from_worker(batch.messages[1], &msg, &err));
    CHECK(err.find("descriptor") != std::string::npos);
    CHECK(batch.results[2] == Recv::invalid); // oversized
    CHECK((batch.results[3] == Recv::message && batch.messages[3].type == Msg::closed));
    batch.release();
    const int again = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(again == next_free);
    close(again);

    receive_messages(p.b.get(), batch);
    CHECK(batch.count == 0);
    CHECK(batch.end == Recv::again);
}

TEST_CASE("a full batch says more may wait; the end of file comes after what was sent")
{
    Pair p;
    const std::uint8_t rec[] = { 6, 'x' };
    for (std::size_t i = 0; i < max_receive_batch + 3; i++)
        REQUIRE(send_message(p.a.get(), Msg::log, rec) == 0);
    p.a.reset();
    ReceiveBatch batch;
    receive_messages(p.b.get(), batch);
    CHECK(batch.count == max_receive_batch);
    CHECK(batch.end == Recv::message);
    receive_messages(p.b.get(), batch);
    CHECK(batch.count == 3);
    CHECK(batch.end == Recv::eof);
    for (std::size_t i = 0; i < batch.count; i++)
        CHECK(batch.results[i] == Recv::message);
}

TEST_CASE("descriptors on a zero-length record, and on any record after it, are closed")
{
    const std::size_t before = open_fds();
    {
        Pair p;
        send_empty_then_more(p.a.get(), max_receive_batch - 1);
        ReceiveBatch batch;
        receive_messages(p.b.get(), batch);
        CHECK(batch.count == 0);
        CHECK(batch.end == Recv::eof);
        batch.release();
    }
    CHECK(open_fds() == before);
    {
        Pair p;
        send_empty_then_more(p.a.get(), 0);
        Received m;
        CHECK(receive_message(p.b.get(), m) == Recv::eof);
    }
    CHECK(open_fds() == before);
}
