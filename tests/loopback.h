// loopback.h: a TCP listener on 127.0.0.1 at a port the kernel picks, for unit tests that
// need a real TCP peer.
#pragma once

#include "catch.h"
#include "fd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace sniproxy::test {

// *where receives the address it listens on.
inline UniqueFd loopback_listener(sockaddr_in* where)
{
    UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    *where = {};
    where->sin_family = AF_INET;
    where->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *where;
    REQUIRE(bind(listener.get(), reinterpret_cast<sockaddr*>(where), sizeof *where) == 0);
    REQUIRE(listen(listener.get(), 1) == 0);
    REQUIRE(getsockname(listener.get(), reinterpret_cast<sockaddr*>(where), &len) == 0);
    return listener;
}

} // namespace sniproxy::test
