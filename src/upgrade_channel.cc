// upgrade_channel.cc: the new parent adopts the upgrade channel only after checking what the
// descriptor is: a number from the environment is not trusted on its own.
#include "upgrade_channel.h"

#include "log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <charconv>

namespace sniproxy {

bool adopt_upgrade_channel(std::string_view fd_text, UniqueFd* out, std::string* err)
{
    int fd = -1;
    const auto [end, ec] = std::from_chars(fd_text.data(), fd_text.data() + fd_text.size(), fd);
    if (ec != std::errc {} || end != fd_text.data() + fd_text.size() || fd < 3) {
        *err = std::string(upgrade_channel_env) + "=" + std::string(fd_text)
            + " is not a descriptor number";
        return false;
    }
    const std::string what = "upgrade channel (descriptor " + std::to_string(fd) + ")";
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err = errno_message(what, errno);
        return false;
    }
    int type = 0, domain = 0;
    socklen_t len = sizeof type;
    const bool is_socket = S_ISSOCK(st.st_mode)
        && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0
        && (len = sizeof domain, getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0);
    if (!is_socket || type != SOCK_SEQPACKET || domain != AF_UNIX) {
        *err = what + " is not a Unix SOCK_SEQPACKET socket";
        return false;
    }
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0
        || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        *err = errno_message(what, errno);
        return false;
    }
    out->reset(fd);
    return true;
}

} // namespace sniproxy
