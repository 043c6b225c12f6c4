// hosts_cache.cc: the worker's cache of hosts-directory entries, kept exact by inotify.
//
// Why it is never stale ("every lookup reflects the hosts directory as it is now"):
//  - What is cached is only the existence (lstat) of six names inside an entry, and of the
//    entry itself. A name exists or not by the directory that holds it: only a create, an
//    unlink, a rename or an attribute change (chmod: lstat may start to fail) on that
//    directory can change the answer. The hosts directory and each cached entry's directory
//    are watched for exactly those, and for their own deletion or rename.
//  - The kernel queues the event before the system call that made the change returns. A
//    change that matters to a connection completed before the client sent the last byte of
//    its hello (otherwise the two are concurrent, and either answer is right), hence before
//    the worker read that byte. refresh() runs after that read, at the start of the lookup,
//    so it finds the event and the cache is emptied before it is consulted. That is why the
//    queue is read once per lookup, not once per event-loop turn: a turn can read a hello
//    (straight after the hand-over, or its last segment) after the turn's first read of the
//    queue, and a change made between the two would be missed.
//  - An entry is filled watch first, look second: a change after the watch exists is queued,
//    one before it is seen by the lstat calls.
//  - A symlinked entry is cached only when its target is a sibling in the hosts directory
//    (is_sibling_link) and a real directory: the link itself cannot change in place (it is
//    replaced, an event on the hosts directory), and the watch on the link follows it to the
//    target's directory. A chain of links, or a target elsewhere (sites/example), could
//    change in a directory nobody watches: those entries are looked up every time, as are
//    the alpn/PROTOCOL/tls-socket paths and anything else two levels down.
//  - An allow file's content can change in place without any event on its directory: the
//    cache only says whether one exists; a present one is read per connection as before.
//  - Any event empties the whole cache (changes are rare; the next connections refill it);
//    so does an overflowed queue. A failed read of the queue turns the cache off for good.
//  - Events only come for changes this kernel makes: on a network or FUSE filesystem a
//    change made elsewhere is never reported. open() leaves the cache off unless the hosts
//    directory is on a local filesystem known to report everything (inotify_sees_all_changes;
//    entries on another filesystem mounted below it are the mount case below).
//  - A removed directory's watch goes (IN_IGNORED), so that entries created and removed
//    over time do not use up max_watches.
//  - Not seen: a mount or unmount inside the hosts directory (mounts make no inotify
//    events). Mounting there needs root, and a rollover (SIGHUP) starts workers afresh.
#include "hosts_cache.h"

#include "host_allow.h"
#include "hosts_layout.h"
#include "log.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sniproxy {

namespace {
    // In the order of their bits.
    constexpr std::array<std::string_view, 6> cached_files
        = { socket_file, alpn_dir, proxy_v1_file, proxy_v2_file, proxy_v2_ja4_file, allow_file };

    // Everything that can change whether a name in the directory exists, or whether lstat
    // may look at it; IN_Q_OVERFLOW and IN_IGNORED come unasked.
    constexpr std::uint32_t watch_mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
        | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

    // Bounds the memory a stream of made-up names can take; past it, the cache starts over.
    constexpr std::size_t max_entries = 4096;
    // Watches count against the worker user's fs.inotify.max_user_watches, shared with every
    // worker and anything else running as that user: past this many directories, an entry
    // is looked up every time instead.
    constexpr std::size_t max_watches = 1024;

    bool is_absent(int err)
    {
        return err == ENOENT || err == ENOTDIR;
    }
} // namespace

int cached_file_bit(std::string_view path, std::string_view* entry)
{
    const std::size_t slash = path.find('/');
    if (slash == 0 || slash == std::string_view::npos)
        return -1;
    const std::string_view file = path.substr(slash + 1);
    for (std::size_t i = 0; i < cached_files.size(); i++)
        if (file == cached_files[i]) {
            *entry = path.substr(0, slash);
            return static_cast<int>(i);
        }
    return -1;
}

bool inotify_sees_all_changes(std::uint64_t f_type)
{
    // An allowlist: a type missing here costs a cache, one wrongly here costs correctness.
    // Overlayfs reports what is done through it (changing its layers beneath it is not
    // supported by overlayfs itself); read-only images never change.
    constexpr std::uint64_t local[] = {
        EXT4_SUPER_MAGIC, // ext2, ext3, ext4
        XFS_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
        TMPFS_MAGIC,
        RAMFS_MAGIC,
        F2FS_SUPER_MAGIC,
        0x2fc12fc1, // zfs (not in linux/magic.h)
        0xca451a4e, // bcachefs
        0x3153464a, // jfs
        REISERFS_SUPER_MAGIC,
        OVERLAYFS_SUPER_MAGIC,
        SQUASHFS_MAGIC,
        EROFS_SUPER_MAGIC_V1,
    };
    for (std::uint64_t t : local)
        if (t == f_type)
            return true;
    return false;
}

bool is_sibling_link(std::string_view target)
{
    return !target.empty() && target != "." && target != ".."
        && target.find('/') == std::string_view::npos;
}

HostsCache::HostsCache(std::string root)
    : root_(std::move(root))
{
}

bool HostsCache::open(std::string* err)
{
    const std::string dir = root_.empty() ? "." : root_;
    struct statfs fs;
    if (statfs(dir.c_str(), &fs) != 0) {
        *err = errno_message("statfs " + dir, errno);
        return false;
    }
    // f_type is a signed word on some architectures: its 32 bits are the magic number.
    const auto type = static_cast<std::uint64_t>(static_cast<std::uint32_t>(fs.f_type));
    if (!inotify_sees_all_changes(type)) {
        char hex[16];
        std::snprintf(hex, sizeof hex, "%#llx", static_cast<unsigned long long>(type));
        *err = "the hosts directory is on a filesystem (type " + std::string(hex)
            + ") not known to report every change to inotify (network, FUSE...)";
        return false;
    }
    UniqueFd fd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd) {
        *err = errno_message("inotify_init1", errno);
        return false;
    }
    if (inotify_add_watch(fd.get(), dir.c_str(), watch_mask) < 0) {
        *err = errno_message("watching " + dir, errno);
        return false;
    }
    inotify_ = std::move(fd);
    return true;
}

void HostsCache::refresh()
{
    if (!inotify_)
        return;
    alignas(inotify_event) char buf[4096];
    for (;;) {
        const ssize_t n = read(inotify_.get(), buf, sizeof buf);
        if (n > 0) {
            entries_.clear(); // what the events were does not matter, except:
            forget_removed_watches({ buf, static_cast<std::size_t>(n) });
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        logf_errno(LogLevel::warning, "hosts directory watch lost; looking up every time");
        inotify_.reset();
        entries_.clear();
        watches_.clear();
        return;
    }
}

void HostsCache::forget_removed_watches(std::span<const char> events)
{
    for (std::size_t at = 0; at + sizeof(inotify_event) <= events.size();) {
        inotify_event e;
        std::memcpy(&e, events.data() + at, sizeof e);
        if (e.mask & IN_IGNORED) // the directory is gone (or its watch was removed)
            watches_.erase(e.wd);
        at += sizeof e + e.len;
    }
}

bool HostsCache::lstat_ok(const std::string& path) const
{
    struct stat st;
    return lstat((root_ + path).c_str(), &st) == 0;
}

bool HostsCache::exists(const std::string& path)
{
    std::string_view entry;
    const int bit = inotify_ ? cached_file_bit(path, &entry) : -1;
    if (bit < 0)
        return lstat_ok(path);
    auto it = entries_.find(std::string(entry));
    if (it == entries_.end()) {
        if (entries_.size() >= max_entries)
            entries_.clear();
        it = entries_.emplace(std::string(entry), fill(std::string(entry))).first;
    }
    if (!it->second.cacheable)
        return lstat_ok(path);
    return (it->second.present >> bit) & 1u;
}

HostsCache::Facts HostsCache::fill(const std::string& entry)
{
    fills_++;
    Facts f;
    const std::string path = root_ + entry;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
        f.cacheable = is_absent(errno); // its creation is an event on the hosts directory
        return f;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[256];
        const ssize_t n = readlinkat(AT_FDCWD, path.c_str(), target, sizeof target);
        if (n <= 0 || static_cast<std::size_t>(n) == sizeof target
            || !is_sibling_link(std::string_view(target, static_cast<std::size_t>(n))))
            return f; // not cacheable
        if (lstat((root_ + std::string(target, static_cast<std::size_t>(n))).c_str(), &st) != 0) {
            f.cacheable = is_absent(errno); // dangling: both names are in the hosts directory
            return f;
        }
        if (S_ISLNK(st.st_mode))
            return f; // a chain: its next link is not cacheable
    }
    if (!S_ISDIR(st.st_mode)) {
        f.cacheable = true; // a file or a socket holds no names; replacing it is an event
        return f;
    }
    if (watches_.size() >= max_watches)
        return f; // looked up every time
    const int wd = inotify_add_watch(inotify_.get(), path.c_str(), watch_mask);
    if (wd < 0)
        return f; // out of watches, say: looked up every time
    watches_.insert(wd); // the same directory (an alias) gives the same descriptor
    for (std::size_t i = 0; i < cached_files.size(); i++) {
        if (lstat((path + "/" + std::string(cached_files[i])).c_str(), &st) == 0)
            f.present |= 1u << i;
        else if (!is_absent(errno))
            return Facts {}; // EACCES and the like: not cacheable
    }
    f.cacheable = true;
    return f;
}

} // namespace sniproxy
