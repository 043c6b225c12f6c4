// host_allow.cc: reading HOST/allow with one openat (read-only, no symlink as the file
// itself), one or two reads and a close: the system calls the worker's seccomp allows.
#include "host_allow.h"

#include "fd.h"
#include "log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace sniproxy {

std::string entry_of(std::string_view socket_path)
{
    return std::string(socket_path.substr(0, socket_path.find('/')));
}

bool read_host_allow(
    int dir_fd, const std::string& entry, std::optional<CidrList>* out, std::string* err)
{
    out->reset();
    const std::string path = entry + "/" + std::string(allow_file);
    // O_NONBLOCK: a FIFO put there must not hang the worker (open would wait for a writer).
    const UniqueFd fd(openat(dir_fd, path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd) {
        if (errno == ENOENT)
            return true;
        *err = errno_message(path, errno);
        return false;
    }
    // Sized by fstat, read to the end anyway (a file may grow meanwhile), never past the bound.
    struct stat st;
    if (fstat(fd.get(), &st) != 0) {
        *err = errno_message(path, errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = path + ": not a regular file";
        return false;
    }
    const std::size_t expect = std::min<std::size_t>(
        static_cast<std::size_t>(std::max<off_t>(st.st_size, 0)), max_allow_file_bytes);
    std::string text(expect + 1, '\0');
    std::size_t got = 0;
    for (;;) {
        if (got == text.size()) {
            if (text.size() > max_allow_file_bytes)
                break;
            text.resize(std::min(text.size() * 2, max_allow_file_bytes + 1));
        }
        const ssize_t n = read(fd.get(), text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno_message(path, errno);
            return false;
        }
        if (n == 0)
            break;
        got += static_cast<std::size_t>(n);
    }
    if (got > max_allow_file_bytes) {
        *err = path + ": larger than " + std::to_string(max_allow_file_bytes) + " bytes";
        return false;
    }
    text.resize(got);
    CidrList list;
    if (std::string e; !parse_allow_file(text, &list, &e)) {
        *err = path + " " + e;
        return false;
    }
    *out = std::move(list);
    return true;
}

} // namespace sniproxy
