// channel_test.cc: the parent<->worker protocol on a real socketpair, including what a
// misbehaving peer could send.
#include "catch.h"
#include "channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

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

TEST_CASE("a connection message carries its descriptor and timestamp")
{
    Pair p;
    UniqueFd file(open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(send_connection(p.a.get(), file.get(), 123456789) == 0);
    Received m;
    REQUIRE(receive_message(p.b.get(), m) == Recv::message);
    CHECK(m.type == Msg::connection);
    REQUIRE(m.payload_len == 8);
    std::int64_t ts;
    std::memcpy(&ts, m.payload, 8);
    CHECK(ts == 123456789);
    REQUIRE(m.fd);
    CHECK(same_file(m.fd.get(), file.get()));
    CHECK((fcntl(m.fd.get(), F_GETFD) & FD_CLOEXEC)); // MSG_CMSG_CLOEXEC
    CHECK(receive_message(p.b.get(), m) == Recv::again);
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
