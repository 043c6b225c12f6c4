// hosts_check_paths.h: the filesystem half of hosts_check.cc: resolving a path the way a
// worker chrooted into the hosts directory will, the permission test for the worker user,
// and probing whether a Unix socket has a listener. Internal to the checker.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace sniproxy::hosts_check_detail {

struct Resolved {
    enum class Status {
        ok,
        missing, // a component does not exist (dangling symlink, or no such file)
        escapes, // ".." would climb above the root
        loop, // more than 40 symlinks, as Linux's ELOOP
        not_directory, // a non-directory in the middle of the path
        error, // anything else; see err
    };
    Status status = Status::error;
    // ok: the resolved path relative to the root, no symlinks in it ("" is the root itself).
    // Otherwise the (partly resolved) path where it went wrong.
    std::string path;
    struct stat st { }; // ok: lstat of the result (a symlink only if follow_last was false)
    int err = 0; // error: the errno
    std::string last_link; // "name -> target" of the last symlink followed, "" if none
    bool absolute_target = false; // an absolute symlink target was followed
    // Every directory looked up in on the way, relative to the root, root ("") first, so the
    // worker's search permission can be checked along the path it will really take.
    std::vector<std::string> searched;
};

// Resolve `rel` (relative to root_fd) like path lookup inside chroot(root): an absolute
// symlink target restarts at the root, ".." is followed textually on the resolved path, and
// ".." at the root is reported as escapes: inside the chroot it would stay at the root, but
// outside it (an operator's shell, another tool) it would not, so such a tree is wrong either
// way. The last component is followed only if follow_last.
Resolved resolve_in_tree(int root_fd, const std::string& rel, bool follow_last);

// Names in a directory, without "." and "..", sorted. Returns 0 or the errno.
int list_directory(int dir_fd, std::vector<std::string>& names);

// "a regular file", "a directory", ... for messages.
const char* file_type(mode_t mode);

// Whether a process with exactly this uid and primary gid may search (x) a directory or write
// (w) a file, from the mode bits as the kernel picks them: owner bits if it owns the file, else
// group bits if the group matches, else the others' bits. uid 0 may do both. POSIX ACLs and
// supplementary groups are not considered: the result errs towards a warning.
bool can_search(const struct stat& st, uid_t uid, gid_t gid);
bool can_write(const struct stat& st, uid_t uid, gid_t gid);

// "mode 0750, owner 0:0" for messages.
std::string describe_owner_mode(const struct stat& st);

// Connect (non-blocking, SOCK_STREAM) to the socket at `rel` below root_fd and report: 0 when
// something listens (including a full backlog), else the errno (ECONNREFUSED: nobody listens).
// The path is reached through /proc/self/fd, so its length never matters.
int probe_socket(int root_fd, const std::string& rel);

} // namespace sniproxy::hosts_check_detail
