// metrics_listener.cc: socket(), bind(), listen() for the metrics endpoint.
#include "metrics_listener.h"

#include "listen_address.h"
#include "listeners.h"
#include "log.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sniproxy {

namespace {
    constexpr int backlog = 128; // the server accepts at most max_clients at once anyway

    bool bind_inet(const sockaddr_storage& addr, socklen_t len, bool dual_stack, UniqueFd* out,
        std::string* err)
    {
        const std::string where = "metrics " + format_address(addr);
        UniqueFd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd)
            return set_error(err, errno_message("socket for " + where, errno));
        const int one = 1, zero = 0;
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (addr.ss_family == AF_INET6)
            setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof one);
        if (!bind_and_listen(fd.get(), addr, len, where, backlog, err))
            return false;
        *out = std::move(fd);
        return true;
    }

    bool bind_unix(const std::string& path, MetricsListener* out, std::string* err)
    {
        const std::string where = "metrics unix:" + path;
        struct stat st { };
        if (lstat(path.c_str(), &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                return set_error(
                    err, where + ": exists and is not a socket; remove it or choose another path");
            if (unlink(path.c_str()) != 0) // a stale socket of an earlier run
                return set_error(err, errno_message(where + ": removing the old socket", errno));
        }
        UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd)
            return set_error(err, errno_message("socket for " + where, errno));
        sockaddr_un sun {};
        sun.sun_family = AF_UNIX;
        std::memcpy(sun.sun_path, path.data(), path.size()); // length checked by the settings
        // The mode is set at creation, so nobody else can connect in between.
        const mode_t old = umask(0117);
        const int rc = bind(fd.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof sun);
        const int e = errno;
        umask(old);
        if (rc != 0)
            return set_error(err, errno_message("cannot listen on " + where, e));
        if (listen(fd.get(), backlog) != 0)
            return set_error(err, errno_message("listen on " + where, errno));
        if (lstat(path.c_str(), &st) == 0) {
            out->dev = st.st_dev;
            out->ino = st.st_ino;
        }
        out->fd = std::move(fd);
        out->path = path;
        return true;
    }
} // namespace

bool bind_metrics_listener(const MetricsAddress& address, MetricsListener* out, std::string* err)
{
    if (!address.unix_path.empty())
        return bind_unix(address.unix_path, out, err);
    if (address.inet.size() == 1)
        return bind_inet(address.inet[0].addr, address.inet[0].len, false, &out->fd, err);
    // *:PORT (IPv4 and IPv6 wildcards): the metrics server takes one listener, so one IPv6
    // socket for both where the kernel has IPv6, else IPv4 alone.
    const bool have_v6
        = static_cast<bool>(UniqueFd(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)));
    for (const ListenAddress& a : address.inet)
        if (a.addr.ss_family == (have_v6 ? AF_INET6 : AF_INET))
            return bind_inet(a.addr, a.len, have_v6, &out->fd, err);
    return set_error(err, "metrics " + address.text + ": no address to listen on");
}

void remove_socket_file(const MetricsListener& listener)
{
    struct stat st { };
    if (!listener.path.empty() && lstat(listener.path.c_str(), &st) == 0
        && st.st_dev == listener.dev && st.st_ino == listener.ino)
        unlink(listener.path.c_str());
}

} // namespace sniproxy
