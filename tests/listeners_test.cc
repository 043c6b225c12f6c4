// listeners_test.cc: what bound listeners hand to every accepted client socket. Linux copies
// TCP_NODELAY and the keepalive settings from a listener to the sockets it accepts, which is
// why the worker (without setsockopt in its allowlist) still gets them.
#include "catch.h"
#include "loopback.h"

#include "fd.h"
#include "listen_address.h"
#include "listeners.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>
#include <vector>

using namespace sniproxy;

namespace {

int int_option(int fd, int level, int name)
{
    int value = -1;
    socklen_t len = sizeof value;
    REQUIRE(getsockopt(fd, level, name, &value, &len) == 0);
    return value;
}

} // namespace

TEST_CASE("accepted sockets carry keepalive and no-delay from the listener", "[listeners]")
{
    // -l takes no port 0: borrow a free port from the kernel first.
    int port = 0;
    {
        sockaddr_in a;
        const UniqueFd probe = test::loopback_listener(&a);
        port = ntohs(a.sin_port);
    }
    std::vector<ListenAddress> addresses;
    std::string err;
    REQUIRE(parse_listen_address("127.0.0.1:" + std::to_string(port), &addresses, &err));
    std::vector<UniqueFd> listeners;
    REQUIRE(bind_listeners(addresses, &listeners, &err));
    REQUIRE(listeners.size() == 1);
    sockaddr_storage where {};
    socklen_t len = sizeof where;
    REQUIRE(getsockname(listeners[0].get(), reinterpret_cast<sockaddr*>(&where), &len) == 0);

    UniqueFd client(socket(AF_INET, SOCK_STREAM, 0));
    REQUIRE(connect(client.get(), reinterpret_cast<sockaddr*>(&where), len) == 0);
    pollfd p { listeners[0].get(), POLLIN, 0 };
    REQUIRE(poll(&p, 1, 2000) == 1);
    UniqueFd accepted(accept4(listeners[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(accepted);

    // A peer gone without FIN or RST is detected after about 60 + 10 * 6 s, not never.
    CHECK(int_option(accepted.get(), SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(int_option(accepted.get(), IPPROTO_TCP, TCP_KEEPIDLE) == keepalive_idle_s);
    CHECK(int_option(accepted.get(), IPPROTO_TCP, TCP_KEEPINTVL) == keepalive_interval_s);
    CHECK(int_option(accepted.get(), IPPROTO_TCP, TCP_KEEPCNT) == keepalive_probes);
    CHECK(keepalive_idle_s == 60);
    CHECK(keepalive_interval_s * keepalive_probes == 60);
    CHECK(int_option(accepted.get(), IPPROTO_TCP, TCP_NODELAY) == 1);
}

TEST_CASE("the kernel tells a TCP listener's queue length, and only a TCP listener's",
    "[listeners]")
{
    sockaddr_in a;
    const UniqueFd listener = test::loopback_listener(&a);
    std::size_t queued = 99;
    std::string err;
    REQUIRE(accept_queue_length(listener.get(), &queued, &err));
    CHECK(queued == 0);
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 2; i++) { // the helper's backlog of 1 queues two
        clients.emplace_back(socket(AF_INET, SOCK_STREAM, 0));
        REQUIRE(connect(clients.back().get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    pollfd p { listener.get(), POLLIN, 0 };
    REQUIRE(poll(&p, 1, 2000) == 1);
    REQUIRE(accept_queue_length(listener.get(), &queued, &err));
    CHECK(queued == 2);
    UniqueFd accepted(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(accepted);
    REQUIRE(accept_queue_length(listener.get(), &queued, &err));
    CHECK(queued == 1);
    // An accepted connection is no listener; neither is a Unix socket.
    CHECK_FALSE(accept_queue_length(accepted.get(), &queued, &err));
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    const UniqueFd x(sv[0]), y(sv[1]);
    CHECK_FALSE(accept_queue_length(x.get(), &queued, &err));
    CHECK(err.find("TCP_INFO") != std::string::npos);
}

TEST_CASE("a deferring listener accepts a client once it has sent something", "[listeners]")
{
    sockaddr_in a;
    std::vector<UniqueFd> listeners;
    listeners.push_back(test::loopback_listener(&a));
    defer_accept(listeners, 10);
    CHECK(int_option(listeners[0].get(), IPPROTO_TCP, TCP_DEFER_ACCEPT) > 0);
    UniqueFd client(socket(AF_INET, SOCK_STREAM, 0));
    REQUIRE(connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    pollfd p { listeners[0].get(), POLLIN, 0 };
    CHECK(poll(&p, 1, 300) == 0); // connected, silent: nothing to accept yet
    REQUIRE(send(client.get(), "\x16", 1, 0) == 1);
    CHECK(poll(&p, 1, 2000) == 1);
    UniqueFd accepted(accept4(listeners[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(accepted);
    char byte = 0;
    CHECK(recv(accepted.get(), &byte, 1, MSG_DONTWAIT) == 1); // the first bytes are there
    CHECK(byte == '\x16');
}
