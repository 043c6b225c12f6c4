// move_check.cc: fstat and getsockopt on each handed-over descriptor: the kind of file, then
// for sockets their type and domain. Nothing is read from or written to them.
#include "move_check.h"

#include "log.h"

#include <netinet/in.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>

namespace sniproxy {

namespace {
    bool socket_kind(int fd, int want_type, int* domain, const char* what, std::string* err)
    {
        struct stat st { };
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
            *err = std::string("the ") + what + " is not a socket";
            return false;
        }
        int type = 0;
        socklen_t len = sizeof type;
        socklen_t dlen = sizeof *domain;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0
            || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, domain, &dlen) != 0) {
            *err = errno_message(what, errno);
            return false;
        }
        if (type != want_type) {
            *err = std::string("the ") + what + " is not a stream socket";
            return false;
        }
        return true;
    }
} // namespace

bool check_moving_fds(std::span<const UniqueFd> fds, bool with_pipe, std::string* err)
{
    const std::size_t want = with_pipe ? 3 : 2;
    if (fds.size() != want) {
        *err = std::to_string(fds.size()) + " descriptor(s) where " + std::to_string(want)
            + " belong";
        return false;
    }
    int domain = 0;
    if (!socket_kind(fds[0].get(), SOCK_STREAM, &domain, "client", err))
        return false;
    int protocol = 0;
    socklen_t plen = sizeof protocol;
    if ((domain != AF_INET && domain != AF_INET6)
        || getsockopt(fds[0].get(), SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) != 0
        || protocol != IPPROTO_TCP) {
        *err = "the client is not a TCP socket";
        return false;
    }
    if (!socket_kind(fds[1].get(), SOCK_STREAM, &domain, "backend", err))
        return false;
    if (domain != AF_UNIX) {
        *err = "the backend is not a Unix socket";
        return false;
    }
    if (with_pipe) {
        struct stat st { };
        if (fstat(fds[2].get(), &st) != 0 || !S_ISFIFO(st.st_mode)) {
            *err = "the pipe is not a pipe";
            return false;
        }
    }
    return true;
}

} // namespace sniproxy
