// hosts_check_paths.cc: chroot-style path resolution, worker permission bits and the
// listener probe used by the hosts-directory checker.
#include "hosts_check_paths.h"

#include "fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string_view>

namespace sniproxy::hosts_check_detail {

namespace {

    struct DirCloser {
        void operator()(DIR* d) const { closedir(d); }
    };
    using DirPtr = std::unique_ptr<DIR, DirCloser>;

    // Linux gives up with ELOOP after 40 symlinks in one lookup; so do we.
    constexpr int max_symlinks = 40;

    std::string join(const std::vector<std::string>& parts)
    {
        std::string out;
        for (const std::string& p : parts) {
            if (!out.empty())
                out += '/';
            out += p;
        }
        return out;
    }

    // Put the components of `path` in front of what is still to be resolved.
    void prepend_components(std::deque<std::string>& todo, std::string_view path)
    {
        std::vector<std::string> parts;
        for (std::size_t start = 0; start <= path.size();) {
            std::size_t slash = path.find('/', start);
            if (slash == std::string_view::npos)
                slash = path.size();
            if (slash > start)
                parts.emplace_back(path.substr(start, slash - start));
            start = slash + 1;
        }
        todo.insert(todo.begin(), parts.begin(), parts.end());
    }

    // lstat relative to the root; "" is the root itself. Returns 0 or the errno.
    int lstat_in(int root_fd, const std::string& rel, struct stat& st)
    {
        const int rc = rel.empty() ? fstat(root_fd, &st)
                                   : fstatat(root_fd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW);
        return rc == 0 ? 0 : errno;
    }

    int read_link(int root_fd, const std::string& rel, std::string& target)
    {
        std::string buf(256, '\0');
        for (;;) {
            const ssize_t n = readlinkat(root_fd, rel.c_str(), buf.data(), buf.size());
            if (n < 0)
                return errno;
            if (static_cast<std::size_t>(n) < buf.size()) {
                buf.resize(static_cast<std::size_t>(n));
                target = std::move(buf);
                return 0;
            }
            if (buf.size() >= 65536) // PATH_MAX is 4096: nothing sane is this long
                return ENAMETOOLONG;
            buf.resize(buf.size() * 2);
        }
    }

    // Mode bits (rwx) that apply to uid/gid, as the kernel chooses them: only the owner bits
    // for the owner, even when the group bits would allow more. uid 0 gets no bypass: workers
    // drop every capability, and without CAP_DAC_OVERRIDE root obeys the bits like anyone.
    unsigned applicable_bits(const struct stat& st, uid_t uid, gid_t gid)
    {
        if (st.st_uid == uid)
            return (st.st_mode >> 6) & 7;
        if (st.st_gid == gid)
            return (st.st_mode >> 3) & 7;
        return st.st_mode & 7;
    }

} // namespace

Resolved resolve_in_tree(int root_fd, const std::string& rel, bool follow_last)
{
    Resolved r;
    std::vector<std::string> cur; // resolved so far: real directories, no symlinks
    std::deque<std::string> todo;
    prepend_components(todo, rel);
    int links = 0;
    auto fail = [&](Resolved::Status status, int err) {
        r.status = status;
        r.err = err;
        r.path = join(cur);
        return r;
    };
    while (!todo.empty()) {
        std::string c = std::move(todo.front());
        todo.pop_front();
        if (c == ".")
            continue;
        if (c == "..") {
            if (cur.empty())
                return fail(Resolved::Status::escapes, 0);
            cur.pop_back();
            continue;
        }
        if (std::string dir = join(cur);
            std::find(r.searched.begin(), r.searched.end(), dir) == r.searched.end())
            r.searched.push_back(std::move(dir));
        cur.push_back(std::move(c));
        const std::string path = join(cur);
        struct stat st;
        if (const int e = lstat_in(root_fd, path, st); e != 0) {
            if (e == ENOENT)
                return fail(Resolved::Status::missing, e);
            return fail(
                e == ENOTDIR ? Resolved::Status::not_directory : Resolved::Status::error, e);
        }
        if (S_ISLNK(st.st_mode) && (!todo.empty() || follow_last)) {
            if (++links > max_symlinks)
                return fail(Resolved::Status::loop, ELOOP);
            std::string target;
            if (const int e = read_link(root_fd, path, target); e != 0)
                return fail(Resolved::Status::error, e);
            r.last_link.assign(path).append(" -> ").append(target);
            cur.pop_back();
            // Inside the chroot "/" is the hosts directory itself.
            if (target.starts_with('/')) {
                cur.clear();
                r.absolute_target = true;
            }
            prepend_components(todo, target);
            continue;
        }
        if (!todo.empty() && !S_ISDIR(st.st_mode))
            return fail(Resolved::Status::not_directory, ENOTDIR);
    }
    r.path = join(cur);
    // Stat again rather than keep the last lstat: the path may have ended in "..".
    if (const int e = lstat_in(root_fd, r.path, r.st); e != 0)
        return fail(Resolved::Status::error, e);
    r.status = Resolved::Status::ok;
    return r;
}

int list_directory(int dir_fd, std::vector<std::string>& names)
{
    // fdopendir takes ownership of the fd it is given, so give it a copy.
    UniqueFd copy(fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
    if (!copy)
        return errno;
    DirPtr dir(fdopendir(copy.get()));
    if (!dir)
        return errno;
    copy.release();
    rewinddir(dir.get()); // a dup shares the offset: start from the top whatever it was
    for (;;) {
        errno = 0;
        const dirent* ent = readdir(dir.get());
        if (!ent) {
            if (errno != 0)
                return errno;
            break;
        }
        const std::string_view name = ent->d_name;
        if (name != "." && name != "..")
            names.emplace_back(name);
    }
    std::sort(names.begin(), names.end());
    return 0;
}

const char* file_type(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "a symlink";
}

bool can_search(const struct stat& st, uid_t uid, gid_t gid)
{
    return (applicable_bits(st, uid, gid) & 1) != 0;
}

bool can_write(const struct stat& st, uid_t uid, gid_t gid)
{
    return (applicable_bits(st, uid, gid) & 2) != 0;
}

std::string describe_owner_mode(const struct stat& st)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "mode %04o, owner %u:%u",
        static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned>(st.st_uid),
        static_cast<unsigned>(st.st_gid));
    return buf;
}

int probe_socket(int root_fd, const std::string& rel)
{
    // O_PATH opens the socket inode without connecting; /proc/self/fd/N then names it in a
    // sun_path of a few bytes however deep the hosts directory is.
    const UniqueFd path_fd(openat(root_fd, rel.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!path_fd)
        return errno;
    const UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock)
        return errno;
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d", path_fd.get());
    if (connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
        return 0;
    // A full backlog (EAGAIN) still means a listener; EINPROGRESS is not used by AF_UNIX but
    // would mean the same.
    if (errno == EAGAIN || errno == EINPROGRESS)
        return 0;
    return errno;
}

} // namespace sniproxy::hosts_check_detail
