// landlock.cc: Landlock rulesets (see landlock.h). Debian 12's kernel headers stop at ABI 2,
// so the newer constants and the full ruleset attribute are defined here, and the three
// system calls are made with syscall(2).
#include "config.h"

#include "landlock.h"

#include "fd.h"
#include "log.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) // ABI 3
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) // ABI 5
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0) // ABI 4
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) // ABI 6
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

namespace sniproxy {

namespace {

    // The attribute as of ABI 6; the kernel takes its size, so older kernels see a prefix.
    struct RulesetAttr {
        std::uint64_t handled_access_fs;
        std::uint64_t handled_access_net;
        std::uint64_t scoped;
    };

    struct PathBeneathAttr {
        std::uint64_t allowed_access;
        std::int32_t parent_fd;
    } __attribute__((packed));

    constexpr std::uint64_t fs_read = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
    constexpr std::uint64_t fs_exec = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE;

    std::string dirname_of(const std::string& path)
    {
        const std::size_t slash = path.find_last_of('/');
        if (slash == std::string::npos)
            return ".";
        return slash == 0 ? "/" : path.substr(0, slash);
    }

    // Sizes of RulesetAttr an ABI understands: before ABI 4 only the fs field exists.
    std::size_t attr_size(int abi)
    {
        if (abi >= 6)
            return sizeof(RulesetAttr);
        if (abi >= 4)
            return offsetof(RulesetAttr, scoped);
        return offsetof(RulesetAttr, handled_access_net);
    }

} // namespace

int landlock_abi()
{
#ifdef SNIPROXYD_REDTEAM
    if (const char* forced = std::getenv("SNIPROXYD_REDTEAM_LANDLOCK_ABI"))
        return std::atoi(forced);
#endif
    const long abi
        = syscall(__NR_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? static_cast<int>(abi) : 0;
}

std::uint64_t landlock_fs_rights(int abi)
{
    if (abi <= 0)
        return 0;
    std::uint64_t rights = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; // ABI 1: bits 0..12
    if (abi >= 2)
        rights |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return rights;
}

namespace {
    LandlockPlan base_plan(int abi)
    {
        LandlockPlan plan;
        if (abi <= 0)
            return plan;
        plan.abi = abi;
        plan.handled_fs = landlock_fs_rights(abi);
        if (abi >= 4)
            plan.handled_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
        if (abi >= 6)
            plan.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
        return plan;
    }
} // namespace

LandlockPlan plan_worker_landlock(int abi, const std::string& hosts_dir)
{
    LandlockPlan plan = base_plan(abi);
    if (plan.abi > 0)
        plan.rules.push_back({ hosts_dir, fs_read });
    return plan;
}

LandlockPlan plan_parent_landlock(int abi, const ParentPaths& paths)
{
    LandlockPlan plan = base_plan(abi);
    if (plan.abi == 0)
        return plan;
    // Not signals: an upgraded parent restricts itself one layer deeper and must still tell
    // the old parent (outside its new domain) to drain. Abstract sockets stay scoped; if a
    // service manager's NOTIFY_SOCKET is ever used, it is abstract: drop the scope then.
    plan.scoped &= ~static_cast<std::uint64_t>(LANDLOCK_SCOPE_SIGNAL);
    // Its directory, not the file: an upgrade replaces the binary (a new inode) in place.
    plan.rules.push_back({ dirname_of(paths.executable), fs_exec });
    // The dynamic loader, its cache and the libraries of every exec'd worker and new parent.
    for (const char* dir : { "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib" })
        plan.rules.push_back({ dir, fs_exec | LANDLOCK_ACCESS_FS_READ_DIR });
    // A new parent (SIGUSR2) resolves the worker user and formats syslog times.
    for (const char* file :
        { "/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime" })
        plan.rules.push_back({ file, LANDLOCK_ACCESS_FS_READ_FILE });
    plan.rules.push_back(
        { "/dev/null", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE });
    // The tree the hosts symlink lives in, so `ln -sfn hosts.new hosts` stays readable; never
    // the root directory, which would make the whole filesystem readable (`-H /hosts`).
    plan.rules.push_back({ paths.hosts_dir, fs_read });
    if (const std::string up = dirname_of(paths.hosts_dir); up != "/" && !up.empty())
        plan.rules.push_back({ up, fs_read });
    if (!paths.pidfile.empty()) {
        plan.rules.push_back({ paths.pidfile,
            LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE
                | LANDLOCK_ACCESS_FS_TRUNCATE });
        // Removing it at exit, creating it again after an upgrade if it went missing.
        plan.rules.push_back({ dirname_of(paths.pidfile),
            LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG });
    }
    if (!paths.metrics_socket.empty()) // removed at exit; an upgrade's new parent binds anew
        plan.rules.push_back({ dirname_of(paths.metrics_socket),
            LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_SOCK });
    // Its own open descriptors, published as a metric (this process's directory only).
    plan.rules.push_back({ "/proc/self/fd", LANDLOCK_ACCESS_FS_READ_DIR });
#ifdef WITH_SANITIZERS
    // Sanitizer reports read /proc/self/maps in the parent and in every worker.
    plan.rules.push_back({ "/proc", fs_read });
#endif
    return plan;
}

std::string landlock_protections(const LandlockPlan& plan)
{
    std::string out;
    auto add = [&out](const char* what) { out += (out.empty() ? "" : ", ") + std::string(what); };
    if (plan.handled_net)
        add("net");
    if (plan.scoped)
        add("scope");
    if (plan.handled_fs)
        add("fs");
    return out;
}

bool apply_landlock(const LandlockPlan& plan, std::string* err)
{
    if (plan.abi <= 0)
        return true;
    const RulesetAttr attr { plan.handled_fs, plan.handled_net, plan.scoped };
    UniqueFd ruleset(
        static_cast<int>(syscall(__NR_landlock_create_ruleset, &attr, attr_size(plan.abi), 0)));
    if (!ruleset) {
        *err = errno_message("landlock_create_ruleset", errno);
        return false;
    }
    for (const LandlockPathRule& rule : plan.rules) {
        UniqueFd dir(open(rule.path.c_str(), O_PATH | O_CLOEXEC));
        if (!dir) {
            if (errno == ENOENT)
                continue; // /lib64 on some systems, a pid file not written
            *err = errno_message("landlock: " + rule.path, errno);
            return false;
        }
        // A rule on a file may only carry rights that make sense on a file.
        std::uint64_t access = rule.access & plan.handled_fs;
        struct stat st;
        if (fstat(dir.get(), &st) == 0 && !S_ISDIR(st.st_mode))
            access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE
                | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE
                | LANDLOCK_ACCESS_FS_IOCTL_DEV;
        if (access == 0)
            continue;
        const PathBeneathAttr beneath { access, dir.get() };
        if (syscall(__NR_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &beneath, 0)
            != 0) {
            *err = errno_message("landlock_add_rule(" + rule.path + ")", errno);
            return false;
        }
    }
    if (syscall(__NR_landlock_restrict_self, ruleset.get(), 0) != 0) {
        *err = errno_message("landlock_restrict_self", errno);
        return false;
    }
    return true;
}

} // namespace sniproxy
