// hosts_check.cc: the hosts-directory checker shared by `sniproxyd -n` and `sniproxyctl check`.
// It judges every top-level entry by the rules the workers route by (hostname.h,
// hashed_name.h), following symlinks as they will inside their chroot (hosts_check_paths.cc).
#include "hosts_check.h"

#include "alpn_name.h"
#include "host_allow.h"

#include "escape.h"
#include "fd.h"
#include "hashed_name.h"
#include "hostname.h"
#include "hosts_check_paths.h"
#include "hosts_layout.h"
#include "log.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sniproxy {

namespace {

    using Severity = Finding::Severity;
    using hosts_check_detail::file_type;
    using hosts_check_detail::list_directory;
    using hosts_check_detail::Resolved;

    bool has_non_ascii(std::string_view s)
    {
        return std::any_of(
            s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    }

    // Why a top-level name can never be routed to, with the fix when there is an obvious one.
    std::string invalid_name_message(std::string_view name)
    {
        std::string_view prefix;
        std::string_view body = name;
        if (body.starts_with(wildcard_prefix)) {
            prefix = wildcard_prefix;
            body.remove_prefix(wildcard_prefix.size());
        }
        std::string canonical;
        const NameError e = canonicalize_hostname(body, &canonical);
        if (e == NameError::ok) {
            std::string msg
                = "not a valid name: the daemon only looks up lowercase names without a "
                  "trailing dot, so this never matches; rename it to ";
            msg.append(prefix).append(canonical);
            if (looks_hashed(name))
                msg += " (if it is meant as a hashed name, it is not one the daemon can produce)";
            return msg;
        }
        if (has_non_ascii(name))
            return "not a valid name: it never matches; internationalized names are looked up by "
                   "their A-label (sniproxyctl hostname NAME prints it)";
        return std::string("not a valid name (") + name_error_string(e) + "): it never matches";
    }

    class Checker {
    public:
        Checker(int root_fd, const std::string& dir, const CheckOptions& options,
            std::vector<Finding>& out)
            : root_fd_(root_fd)
            , dir_(dir)
            , opt_(options)
            , out_(out)
        {
        }

        void check_root(const struct stat& st)
        {
            if (permissions()
                && !hosts_check_detail::can_search(st, opt_.worker_uid, opt_.worker_gid))
                add(Severity::warning, dir_,
                    worker() + " cannot search the hosts directory ("
                        + hosts_check_detail::describe_owner_mode(st) + ")");
        }

        void check_entry(const std::string& name)
        {
            struct stat st;
            if (fstatat(root_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                add(Severity::error, name, errno_message("cannot examine it", errno));
                return;
            }
            if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
                add(Severity::warning, name,
                    std::string("unknown file (") + file_type(st.st_mode)
                        + ", not a host directory), ignored");
                return;
            }
            if (!check_name(name))
                return; // it never matches, so nothing inside it matters
            const Resolved r = hosts_check_detail::resolve_in_tree(root_fd_, name, true);
            if (r.status != Resolved::Status::ok) {
                add(Severity::error, name, resolution_problem(r, "symlink", name));
                return;
            }
            if (!S_ISDIR(r.st.st_mode)) {
                add(Severity::error, name,
                    "symlink leads to " + r.path + ", which is " + file_type(r.st.st_mode)
                        + ", not a directory");
                return;
            }
            // An alias of another valid top-level directory shares its backend, and that
            // directory's findings are reported under its own name: saying them twice is noise.
            if (S_ISLNK(st.st_mode) && r.path.find('/') == std::string::npos
                && classify_dir_name(r.path) != DirKind::invalid)
                return;
            check_contents(name, r.path);
        }

    private:
        bool permissions() const { return opt_.worker_uid != static_cast<uid_t>(-1); }

        std::string worker() const
        {
            return "the worker user (uid " + std::to_string(opt_.worker_uid) + ", gid "
                + std::to_string(opt_.worker_gid) + ")";
        }

        void add(Severity severity, const std::string& entry, std::string message)
        {
            out_.push_back(Finding { severity, entry, std::move(message) });
        }

        // The kind of name, and whether the daemon will ever look it up.
        bool check_name(const std::string& name)
        {
            const DirKind kind = classify_dir_name(name);
            if (kind == DirKind::invalid) {
                add(Severity::error, name, invalid_name_message(name));
                return false;
            }
            if (kind != DirKind::hostname && kind != DirKind::wildcard)
                return true;
            const std::string used = host_directory(name, opt_.all_hashed);
            if (used == name)
                return true;
            // Still check the contents: they will matter once the entry is renamed.
            // The daemon looks up the hashed name instead, so that is the fix.
            if (opt_.all_hashed)
                add(Severity::error, name,
                    "never used with every name hashed (-a): rename it to " + used);
            else
                add(Severity::error, name,
                    "never used: its tls-socket path does not fit in sun_path ("
                        + std::to_string(socket_path(name).size()) + " > "
                        + std::to_string(max_unix_path) + " bytes): rename it to " + used);
            return true;
        }

        // `what` names the symlink for the message; `rel` is the path as the workers use it.
        std::string resolution_problem(
            const Resolved& r, const std::string& what, const std::string& rel) const
        {
            switch (r.status) {
            case Resolved::Status::ok:
                break;
            case Resolved::Status::escapes:
                return what + " leaves the hosts directory (" + r.last_link + ")";
            case Resolved::Status::missing: {
                // Missing inside the tree but present outside it: an absolute or climbing link
                // that only works without the chroot.
                struct stat st;
                if (fstatat(root_fd_, rel.c_str(), &st, 0) == 0)
                    return what + " leaves the hosts directory (" + r.last_link
                        + "): the workers are chrooted into it and read absolute targets inside it";
                if (!r.last_link.empty())
                    return what + " is a dangling symlink (" + r.last_link + ")";
                return what + " does not exist";
            }
            case Resolved::Status::loop:
                return what + ": too many levels of symbolic links (" + r.last_link + ")";
            case Resolved::Status::not_directory:
                return what + ": " + r.path + " is not a directory (" + r.last_link + ")";
            case Resolved::Status::error:
                break;
            }
            return errno_message("cannot examine " + what + ": " + r.path, r.err);
        }

        void check_contents(const std::string& name, const std::string& dir_rel)
        {
            const UniqueFd dir_fd(
                openat(root_fd_, dir_rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            std::vector<std::string> names;
            const int e = dir_fd ? list_directory(dir_fd.get(), names) : errno;
            if (e != 0) {
                add(Severity::error, name, errno_message("cannot read the directory", e));
                return;
            }
            bool socket = false, v1 = false, v2 = false, ja4 = false, alpn = false;
            for (const std::string& n : names) {
                if (n == socket_file)
                    socket = true;
                else if (n == proxy_v1_file)
                    v1 = true;
                else if (n == proxy_v2_file)
                    v2 = true;
                else if (n == proxy_v2_ja4_file)
                    ja4 = true;
                else if (n == alpn_dir)
                    alpn = true;
                else if (n == allow_file)
                    check_allow(name, dir_rel);
                else
                    add(Severity::warning, name, "unknown file " + n + ", ignored");
            }
            if (v1 && v2)
                add(Severity::error, name,
                    "both send-proxy-v1 and send-proxy-v2 exist: ambiguous, remove one (the daemon "
                    "would send v2)");
            if (ja4 && !v2)
                add(Severity::warning, name,
                    "send-proxy-v2-ja4 without send-proxy-v2 has no effect, ignored");
            if (!socket)
                add(Severity::error, name, "no tls-socket");
            else
                check_socket(name, name, std::string(socket_file));
            if (alpn)
                check_alpn(name);
        }

        // HOST/alpn/ENC/tls-socket: every name must be what encode_alpn_name gives for the
        // protocol it stands for, and its socket is judged like the host's.
        void check_alpn(const std::string& name)
        {
            const std::string alpn_rel = entry_path(name, alpn_dir);
            const Resolved r = hosts_check_detail::resolve_in_tree(root_fd_, alpn_rel, true);
            if (r.status != Resolved::Status::ok) {
                add(Severity::error, name, resolution_problem(r, "alpn", alpn_rel));
                return;
            }
            if (!S_ISDIR(r.st.st_mode)) {
                add(Severity::error, name,
                    std::string("alpn is ") + file_type(r.st.st_mode) + ", not a directory");
                return;
            }
            const UniqueFd fd(openat(root_fd_, r.path.empty() ? "." : r.path.c_str(),
                O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            std::vector<std::string> protocols;
            if (const int e = fd ? list_directory(fd.get(), protocols) : errno; e != 0) {
                add(Severity::error, name, errno_message("cannot read alpn", e));
                return;
            }
            for (const std::string& encoded : protocols) {
                const std::string label = entry_path(entry_path(alpn_dir, encoded), socket_file);
                std::string protocol, err;
                if (!decode_alpn_name(encoded, &protocol, &err)) {
                    add(Severity::error, name,
                        std::string(alpn_dir) + "/" + encoded + ": " + err + "; it never matches");
                    continue;
                }
                const std::string dir = entry_path(alpn_rel, encoded);
                if (socket_path(dir).size() > max_unix_path) {
                    add(Severity::error, name,
                        "never used: " + label + " does not fit in sun_path ("
                            + std::to_string(socket_path(dir).size()) + " > "
                            + std::to_string(max_unix_path) + " bytes)");
                    continue;
                }
                check_socket(name, dir, label);
            }
        }

        // The worker refuses every connection to an entry whose allow file it cannot use.
        void check_allow(const std::string& name, const std::string& dir_rel)
        {
            std::optional<CidrList> allow;
            if (std::string e; !read_host_allow(root_fd_, dir_rel, &allow, &e))
                add(Severity::error, name, e + " (its connections are all refused)");
            else if (allow && allow->empty())
                add(Severity::warning, name, "allow lists nobody: every connection is refused");
        }

        // `dir` holds the tls-socket (the entry, or one of its alpn/ directories); `label`
        // names the socket in messages.
        void check_socket(const std::string& name, const std::string& dir, const std::string& label)
        {
            // The path the worker opens, so every symlink on the way is followed as it will be.
            const std::string rel = socket_path(dir);
            const Resolved s = hosts_check_detail::resolve_in_tree(root_fd_, rel, true);
            if (s.status != Resolved::Status::ok) {
                add(Severity::error, name, resolution_problem(s, label, rel));
                return;
            }
            if (!S_ISSOCK(s.st.st_mode)) {
                add(Severity::error, name,
                    label + " is not a socket (it is " + file_type(s.st.st_mode) + ")");
                return;
            }
            if (permissions()) {
                for (const std::string& dir : s.searched) {
                    struct stat st;
                    // The root is reported once, by check_root.
                    if (dir.empty()
                        || fstatat(root_fd_, dir.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
                        continue;
                    if (!hosts_check_detail::can_search(st, opt_.worker_uid, opt_.worker_gid))
                        add(Severity::warning, name,
                            worker() + " cannot search " + dir + " ("
                                + hosts_check_detail::describe_owner_mode(st) + ")");
                }
                if (!hosts_check_detail::can_write(s.st, opt_.worker_uid, opt_.worker_gid))
                    add(Severity::warning, name,
                        worker() + " cannot write " + s.path + ", which connecting needs ("
                            + hosts_check_detail::describe_owner_mode(s.st) + ")");
            }
            const int e = hosts_check_detail::probe_socket(root_fd_, s.path);
            if (e == ECONNREFUSED)
                add(Severity::warning, name, label + ": nobody listens on it");
            else if (e != 0)
                add(Severity::warning, name,
                    errno_message(label + ": cannot connect", e)
                        + (e == ENOENT ? " (is /proc mounted?)" : ""));
        }

        int root_fd_;
        const std::string& dir_;
        const CheckOptions& opt_;
        std::vector<Finding>& out_;
    };

} // namespace

std::vector<Finding> check_hosts_dir(const std::string& dir, const CheckOptions& options)
{
    std::vector<Finding> out;
    // Following a symlink here is right: the daemon chroots into what the path names, which is
    // how `ln -sfn hosts.new hosts` swaps a whole configuration.
    const UniqueFd root(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
        const int e = errno;
        out.push_back(Finding { Severity::error, dir,
            e == ENOTDIR ? std::string("not a directory")
                         : errno_message("cannot open the hosts directory", e) });
        return out;
    }
    std::vector<std::string> names;
    struct stat st;
    const int e = fstat(root.get(), &st) != 0 ? errno : list_directory(root.get(), names);
    if (e != 0) {
        out.push_back(
            Finding { Severity::error, dir, errno_message("cannot read the hosts directory", e) });
        return out;
    }
    Checker checker(root.get(), dir, options, out);
    checker.check_root(st);
    for (const std::string& name : names)
        checker.check_entry(name);
    // The directory's own findings first, then by entry; stable keeps each entry's order.
    std::stable_sort(out.begin(), out.end(), [&dir](const Finding& a, const Finding& b) {
        const bool a_root = a.entry == dir, b_root = b.entry == dir;
        if (a_root != b_root)
            return a_root;
        return a.entry < b.entry;
    });
    return out;
}

std::string format_finding(const Finding& finding)
{
    return escape((finding.severity == Severity::error ? "error: " : "warning: ") + finding.entry
            + ": " + finding.message,
        EscapeSet::text);
}

std::size_t print_findings(const std::vector<Finding>& findings)
{
    std::size_t errors = 0, warnings = 0;
    for (const Finding& f : findings) {
        (f.severity == Finding::Severity::error ? errors : warnings)++;
        std::printf("%s\n", format_finding(f).c_str());
    }
    std::printf("%zu error%s, %zu warning%s\n", errors, errors == 1 ? "" : "s", warnings,
        warnings == 1 ? "" : "s");
    return errors;
}

} // namespace sniproxy
