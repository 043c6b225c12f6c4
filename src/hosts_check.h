// hosts_check.h: validating a hosts directory as the chrooted workers will see it, for
// `sniproxyd -n` and `sniproxyctl check`. Reports problems; never changes anything.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace sniproxy {

struct Finding {
    enum class Severity { error, warning } severity;
    std::string entry; // top-level name in the hosts directory, or the directory itself
    std::string message;
};

struct CheckOptions {
    bool all_hashed = false; // the daemon's "every name hashed" mode
    uid_t worker_uid = static_cast<uid_t>(-1); // -1: skip permission checks
    gid_t worker_gid = static_cast<gid_t>(-1);
};

// Errors (the daemon would misroute or never route): a top-level name that is not a canonical
// hostname, wildcard, _default or hashed name; an entry without tls-socket; a tls-socket that is
// not a socket or dangles; a symlink that leaves the tree (absolute targets are read inside it,
// as the chroot will); a name that is never looked up (too long for sun_path, or plain under
// all_hashed: the message names the hashed directory to use); both send-proxy-v1 and -v2;
// a missing or unreadable hosts directory.
// Warnings: unknown files, a socket nobody listens on (found by connecting to it, so a live
// backend sees one empty connection), and with a worker uid/gid, paths the worker cannot search
// or sockets it cannot write.
// Sorted by entry (findings about the directory itself first), stable within an entry.
std::vector<Finding> check_hosts_dir(const std::string& dir, const CheckOptions& options);

// One line, no newline: "error: example.com: tls-socket is not a socket". Backslashes, control
// characters and bytes that are not printable ASCII are escaped as \xNN (escape.h, text), so a
// hostile file name cannot forge lines or drive the terminal.
std::string format_finding(const Finding& finding);

// Prints each finding on stdout, then "N errors, M warnings"; returns the number of errors.
// Shared by `sniproxyd -n` and `sniproxyctl check` so both speak alike.
std::size_t print_findings(const std::vector<Finding>& findings);

} // namespace sniproxy
