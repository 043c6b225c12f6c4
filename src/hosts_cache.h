// hosts_cache.h: what a worker knows of its hosts directory between two changes, so that a
// connection's route costs no failing stat per flag file. For each entry looked up (an exact
// name, a wildcard, _nosni, _default) it keeps whether its tls-socket, alpn/, send-proxy-*
// and allow exist. It is never stale: an inotify watch on the hosts directory and on every
// cached entry's directory reports any change to them, and the queue is read before every
// lookup (refresh), which empties the whole cache if anything at all happened. The argument,
// and what is not cached, is at the top of hosts_cache.cc and in docs/ARCHITECTURE.md.
#pragma once

#include "fd.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace sniproxy {

// The files inside an entry the cache answers for, by bit; any other path is asked of
// lstat(2) each time. -1 when `path` is not "ENTRY/FILE" with FILE one of them.
int cached_file_bit(std::string_view path, std::string_view* entry);
// A symlink's target that names another entry of the hosts directory itself (no '/', not
// "." or ".."): the only kind of link whose meaning the watch on the hosts directory covers.
bool is_sibling_link(std::string_view target);

// Whether a filesystem of this statfs(2) f_type reports through inotify every change to its
// directories, wherever made: a local one. On a network or FUSE filesystem (NFS, CIFS,
// FUSE, virtiofs, 9p, Ceph...) a change made on another machine or by the server makes no
// event, and a cached answer (an absent allow!) would stay wrong. Known types only.
bool inotify_sees_all_changes(std::uint64_t f_type);

class HostsCache {
public:
    // root: the hosts directory with a trailing '/', or "" for the current directory (the
    // worker's chroot).
    explicit HostsCache(std::string root = "");

    // Creates the inotify instance and watches the hosts directory, if it is on a filesystem
    // inotify_sees_all_changes. False, with the reason, leaves the cache off: exists() then
    // asks lstat every time, as without a cache.
    bool open(std::string* err);
    bool active() const { return static_cast<bool>(inotify_); }

    // Reads every queued event; any event at all, an overflow included, empties the cache.
    // Once before each lookup, after the hello is read (see hosts_cache.cc).
    void refresh();
    // Whether lstat(root + path) would succeed, from the cache where it provably knows.
    bool exists(const std::string& path);

    std::size_t entries() const { return entries_.size(); }
    // Entries read from the filesystem so far (each a few system calls): for tests.
    std::uint64_t fills() const { return fills_; }
    // Directories watched now (a removed one's watch is dropped): for tests.
    std::size_t watches() const { return watches_.size(); }

private:
    struct Facts {
        bool cacheable = false; // false: this entry is looked up with lstat every time
        unsigned present = 0; // bit i: the i-th cached file exists (lstat)
    };
    Facts fill(const std::string& entry);
    void forget_removed_watches(std::span<const char> events);
    bool lstat_ok(const std::string& path) const;

    std::string root_;
    UniqueFd inotify_;
    std::unordered_map<std::string, Facts> entries_;
    std::unordered_set<int> watches_; // the directories watched
    std::uint64_t fills_ = 0;
};

} // namespace sniproxy
