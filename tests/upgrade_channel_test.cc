// upgrade_channel_test.cc: the new parent uses the descriptor its environment names only if
// it is a Unix SOCK_SEQPACKET socket.
#include "catch.h"
#include "upgrade_channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

using namespace sniproxy;

TEST_CASE("only a Unix SOCK_SEQPACKET socket is adopted as the upgrade channel")
{
    UniqueFd out;
    std::string err;
    int sv[2];
    SECTION("a SEQPACKET socketpair")
    {
        REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
        UniqueFd other(sv[1]);
        CHECK(adopt_upgrade_channel(std::to_string(sv[0]), &out, &err));
        CHECK(out.get() == sv[0]);
        CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) != 0);
        CHECK((fcntl(sv[0], F_GETFD) & FD_CLOEXEC) != 0);
    }
    SECTION("a stream socketpair")
    {
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        UniqueFd a(sv[0]), b(sv[1]);
        CHECK_FALSE(adopt_upgrade_channel(std::to_string(sv[0]), &out, &err));
        CHECK(err.find("not a Unix SOCK_SEQPACKET socket") != std::string::npos);
    }
    SECTION("a pipe")
    {
        REQUIRE(pipe2(sv, O_CLOEXEC) == 0);
        UniqueFd a(sv[0]), b(sv[1]);
        CHECK_FALSE(adopt_upgrade_channel(std::to_string(sv[0]), &out, &err));
    }
    SECTION("not a number, stdio, or closed")
    {
        CHECK_FALSE(adopt_upgrade_channel("7x", &out, &err));
        CHECK_FALSE(adopt_upgrade_channel("", &out, &err));
        CHECK_FALSE(adopt_upgrade_channel("2", &out, &err));
        CHECK_FALSE(adopt_upgrade_channel("999", &out, &err));
    }
    CHECK((out.get() >= 0) == err.empty());
}
