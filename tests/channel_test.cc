// channel_test.cc: the parent<->worker protocol on a real socketpair, including what a
// misbehaving peer could send.
#include "catch.h"
#include "channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

using namespace sniproxy;

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
    CHECK(m.payload_len == 8 + sizeof(sockaddr_in6));
    ConnectionInfo got;
    REQUIRE(parse_connection(m, got));
    CHECK(got.accepted_ns == 123456789);
    CHECK(std::memcmp(&got.peer, &sent.peer, sizeof(sockaddr_in6)) == 0);
    REQUIRE(m.fd);
    CHECK(same_file(m.fd.get(), file.get()));
    CHECK((fcntl(m.fd.get(), F_GETFD) & FD_CLOEXEC)); // MSG_CMSG_CLOEXEC
    CHECK(receive_message(p.b.get(), m) == Recv::again);
}

TEST_CASE("connection payloads: address optional, lengths must match the family")
{
    Received m;
    m.type = Msg::connection;
    const std::int64_t ts = 42;
    std::memcpy(m.payload, &ts, 8);
    ConnectionInfo info;
    m.payload_len = 8; // no address: the worker asks the kernel
    REQUIRE(parse_connection(m, info));
    CHECK(info.accepted_ns == 42);
    CHECK(info.peer.ss_family == AF_UNSPEC);
    m.payload_len = 7;
    CHECK_FALSE(parse_connection(m, info));
    sockaddr_in in {};
    in.sin_family = AF_INET;
    std::memcpy(m.payload + 8, &in, sizeof in);
    m.payload_len = 8 + sizeof in;
    CHECK(parse_connection(m, info));
    CHECK(info.peer.ss_family == AF_INET);
    m.payload_len = 8 + sizeof in - 1; // truncated
    CHECK_FALSE(parse_connection(m, info));
    CHECK(info.peer.ss_family == AF_UNSPEC);
    sockaddr_in6 in6 {};
    in6.sin6_family = AF_INET; // claims IPv4 with an IPv6-sized body
    std::memcpy(m.payload + 8, &in6, sizeof in6);
    m.payload_len = 8 + sizeof in6;
    CHECK_FALSE(parse_connection(m, info));
    m.payload_len = 8 + sizeof(sockaddr_storage) + 1;
    CHECK_FALSE(parse_connection(m, info));
    m.type = Msg::log;
    m.payload_len = 8;
    CHECK_FALSE(parse_connection(m, info));
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
    CHECK(!m.fd);
    p.a.reset();
    CHECK(receive_message(p.b.get(), m) == Recv::eof);
}

TEST_CASE("a descriptor where none belongs is closed, and a missing one is refused")
{
    Pair p;
    // A "log" message carrying an fd: invalid, and the fd must not leak.
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(send_message_with_fd(p.a.get(), Msg::log, {}, devnull) == 0);
    close(devnull);

    const int next_free = open("/dev/null", O_RDONLY | O_CLOEXEC);
    close(next_free);
    Received m;
    CHECK(receive_message(p.b.get(), m) == Recv::invalid);
    // The received descriptor was closed: the lowest free number is the same as before.
    const int again = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(again == next_free);
    close(again);

    // A connection message without a descriptor.
    REQUIRE(send_message(p.a.get(), Msg::connection, {}) == 0);
    CHECK(receive_message(p.b.get(), m) == Recv::invalid);
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
