// sandbox.cc: privilege separation (see DESIGN.md, "Process model"). jail_worker locks a
// worker into the hosts directory as the unprivileged user with no capabilities;
// parent_drop_capabilities leaves the root parent only what starting and stopping workers
// needs. Every step is checked afterwards rather than trusted, because a half-applied drop
// fails silently otherwise. The syscall allowlist itself lives in seccomp_filter.cc.
#include "config.h"

#include "sandbox.h"

#include "landlock.h"
#include "log.h"
#include "seccomp_filter.h"

#include <grp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef WITH_SANITIZERS
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <type_traits>

namespace sniproxy {

namespace {

    struct CapFree {
        void operator()(void* p) const { cap_free(p); }
    };
    using CapPtr = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;
    using CapText = std::unique_ptr<char, CapFree>;

    // What the parent keeps. Workers are exec'd as root and get exactly these through the
    // bounding set, use them once to jail themselves, then drop them.
    constexpr cap_value_t parent_caps[] = {
        CAP_SETUID, // workers switch to the worker user (setresuid)
        CAP_SETGID, // ... and to its group, dropping supplementary groups (setgroups)
        CAP_SYS_CHROOT, // workers chroot into the hosts directory
        CAP_KILL, // the parent signals workers, which run under another uid (drain, stop)
    };

    bool is_parent_cap(cap_value_t cap)
    {
        return std::find(std::begin(parent_caps), std::end(parent_caps), cap)
            != std::end(parent_caps);
    }

    bool fail(std::string& error, const std::string& step, int err)
    {
        error = step + ": " + std::strerror(err);
        return false;
    }

    bool fail(std::string& error, const std::string& message)
    {
        error = message;
        return false;
    }

    std::string cap_name(cap_value_t cap)
    {
        CapText name(cap_to_name(cap));
        return name ? name.get() : "capability " + std::to_string(cap);
    }

    std::string caps_text(cap_t caps)
    {
        CapText text(cap_to_text(caps, nullptr));
        return text ? text.get() : "(unprintable)";
    }

#ifdef WITH_SANITIZERS
    bool sandboxed = false;
#endif

    // Sanitizer reports read /proc/self/maps, which is gone after chroot and seccomp: let
    // the runtime cache it while it still can.
    void prepare_sanitizers()
    {
#ifdef WITH_SANITIZERS
        static bool done = false;
        if (!done)
            __sanitizer_sandbox_on_notify(nullptr);
        done = true;
#endif
    }

    bool clear_ambient(const std::string& who, std::string& error)
    {
        if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0)
            return fail(error, who + ": clearing the ambient capabilities", errno);
        for (cap_value_t cap = 0; cap < cap_max_bits(); ++cap)
            if (cap_get_ambient(cap) > 0)
                return fail(error, who + ": " + cap_name(cap) + " is still ambient");
        return true;
    }

    // Setting the sets to `wanted` is not enough: verify the kernel agrees.
    bool set_caps(cap_t wanted, const std::string& who, std::string& error)
    {
        if (cap_set_proc(wanted) != 0)
            return fail(error, who + ": cap_set_proc(" + caps_text(wanted) + ")", errno);
        CapPtr now(cap_get_proc());
        if (!now)
            return fail(error, who + ": cap_get_proc", errno);
        if (cap_compare(now.get(), wanted) != 0)
            return fail(error,
                who + ": capabilities are \"" + caps_text(now.get()) + "\", expected \""
                    + caps_text(wanted) + "\"");
        return true;
    }

    bool verify_jailed(const std::string& hosts_dir, const Identity& config, std::string& error)
    {
        const std::string who = "jail_worker";
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;
        if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0)
            return fail(error, who + ": getresuid/getresgid", errno);
        if (ruid != config.uid || euid != config.uid || suid != config.uid)
            return fail(error, who + ": uids are not all " + std::to_string(config.uid));
        if (rgid != config.gid || egid != config.gid || sgid != config.gid)
            return fail(error, who + ": gids are not all " + std::to_string(config.gid));
        const int ngroups = getgroups(0, nullptr);
        gid_t group = config.gid;
        if (ngroups < 0 || ngroups > 1 || (ngroups == 1 && (getgroups(1, &group) != 1)))
            return fail(error, who + ": supplementary groups remain");
        if (group != config.gid)
            return fail(error, who + ": supplementary group " + std::to_string(group) + " remains");
        // The proof that matters: root's powers are really gone.
        if (setuid(0) == 0)
            return fail(error, who + ": setuid(0) still succeeds after dropping privileges");
        if (setgid(0) == 0)
            return fail(error, who + ": setgid(0) still succeeds after dropping privileges");
        if (chroot("/") == 0)
            return fail(error, who + ": chroot(\"/\") still succeeds after dropping privileges");
        // Otherwise every route lookup would fail with EACCES, far from the cause.
        if (access(".", X_OK) != 0)
            return fail(error,
                who + ": the hosts directory " + hosts_dir + " is not searchable by uid "
                    + std::to_string(config.uid),
                errno);
        return true;
    }

} // namespace

#ifdef WITH_SANITIZERS
// LeakSanitizer's exit-time check stops the world with clone+ptrace and lists
// /proc/self/task: a filtered worker would die of SIGSYS, or spin, at exit. So leaks are
// checked in the parent and in tests, not in sandboxed workers. (LSan asks this at exit.)
extern "C" int __lsan_is_turned_off()
{
    return sandboxed ? 1 : 0;
}
#endif

bool jail_worker(
    const std::string& hosts_dir, const Identity& config, std::string& error, int hosts_fd)
{
    // uid 0 would pass every step and keep root; gid 0 would let setgid(0) succeed again.
    if (config.uid == 0 || config.gid == 0)
        return fail(error,
            "jail_worker: refusing to run workers as uid/gid 0; "
            "choose an unprivileged worker user (-u)");
    prepare_sanitizers();
    const std::string& dir = hosts_dir;
    // chdir, then chroot("."): the path is resolved once, so a hosts symlink swapped during
    // a rollover cannot leave cwd and root in different trees, and cwd is never outside root.
    if (hosts_fd >= 0 ? fchdir(hosts_fd) != 0 : chdir(dir.c_str()) != 0)
        return fail(error, "jail_worker: chdir(" + dir + ")", errno);
    if (chroot(".") != 0)
        return fail(error, "jail_worker: chroot(" + dir + ")", errno);
    if (chdir("/") != 0)
        return fail(error, "jail_worker: chdir(/) inside the chroot", errno);
    // Groups before gid before uid: each step needs the privilege the next one removes.
    if (setgroups(1, &config.gid) != 0)
        return fail(error, "jail_worker: setgroups(" + std::to_string(config.gid) + ")", errno);
    if (setresgid(config.gid, config.gid, config.gid) != 0)
        return fail(error, "jail_worker: setresgid(" + std::to_string(config.gid) + ")", errno);
    if (setresuid(config.uid, config.uid, config.uid) != 0)
        return fail(error, "jail_worker: setresuid(" + std::to_string(config.uid) + ")", errno);
    // Leaving uid 0 already empties effective, permitted and ambient; inheritable is not
    // touched by the kernel, so clear everything explicitly.
    CapPtr none(cap_init());
    if (!none)
        return fail(error, "jail_worker: cap_init", errno);
    if (!set_caps(none.get(), "jail_worker", error) || !clear_ambient("jail_worker", error))
        return false;
    return verify_jailed(hosts_dir, config, error);
}

bool set_no_new_privs(std::string& error)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail(error, "set_no_new_privs: prctl(PR_SET_NO_NEW_PRIVS)", errno);
    const int set = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    if (set < 0)
        return fail(error, "set_no_new_privs: prctl(PR_GET_NO_NEW_PRIVS)", errno);
    if (set != 1)
        return fail(error, "set_no_new_privs: no_new_privs reads back as " + std::to_string(set));
    return true;
}

bool restrict_worker(std::string* err)
{
    const rlimit zero {};
    for (int resource : { RLIMIT_NPROC, RLIMIT_FSIZE }) {
        if (setrlimit(resource, &zero) != 0) {
            *err = errno_message(resource == RLIMIT_NPROC ? "restrict_worker: RLIMIT_NPROC"
                                                          : "restrict_worker: RLIMIT_FSIZE",
                errno);
            return false;
        }
    }
    // "." is the hosts directory: the chroot's root, or the directory chdir'ed into.
    if (!apply_landlock(plan_worker_landlock(landlock_abi(), "."), err)) {
        // 16 layers at most: after many SIGUSR2 upgrades the parent's layers (no TCP, no
        // files outside its list) are what a worker keeps, rather than not starting at all.
        if (errno == E2BIG) {
            logf(LogLevel::warning, "restrict_worker: %s (keeping the parent's rulesets)",
                err->c_str());
            return true;
        }
        *err = "restrict_worker: " + *err;
        return false;
    }
    return true;
}

bool confine_parent(const std::string& executable, const std::string& hosts_dir,
    const std::string& pidfile, const std::string& metrics_socket, std::string* err)
{
    // Set already when parent_drop_capabilities ran (root); a non-root parent needs it here.
    if (std::string e; !set_no_new_privs(e)) {
        *err = "confine_parent: " + e;
        return false;
    }
    const int abi = landlock_abi();
    const LandlockPlan worker = plan_worker_landlock(abi, ".");
    if (abi == 0)
        logf(LogLevel::notice,
            "landlock: not available: TCP connect, abstract Unix sockets, signals and file "
            "access are not restricted beyond chroot and seccomp");
    else
        logf(LogLevel::notice, "landlock: ABI %d: %s", abi, landlock_protections(worker).c_str());
    const LandlockPlan parent = plan_parent_landlock(abi, { executable, hosts_dir, pidfile, metrics_socket });
    if (!apply_landlock(parent, err)) {
        // Layers stack at most 16 deep: a parent upgraded that often keeps the ones it has.
        if (errno != E2BIG) {
            *err = "confine_parent: " + *err;
            return false;
        }
        logf(
            LogLevel::warning, "confine_parent: %s (keeping the inherited rulesets)", err->c_str());
    }
    if (!load_parent_seccomp(err)) {
        *err = "confine_parent: " + *err;
        return false;
    }
    return true;
}

bool load_worker_seccomp(std::string& error)
{
    // Without no_new_privs the kernel refuses the filter to an unprivileged process anyway;
    // say which step was skipped instead of reporting EACCES.
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        return fail(error,
            "load_worker_seccomp: no_new_privs is not set; "
            "call set_no_new_privs first");
    prepare_sanitizers();
#ifdef WITH_SANITIZERS
    sandboxed = true;
#endif
    return load_seccomp_allowlist(error);
}

bool parent_drop_capabilities(std::string& kept, std::string& error)
{
    const std::string who = "parent_drop_capabilities";
    CapPtr current(cap_get_proc());
    if (!current)
        return fail(error, who + ": cap_get_proc", errno);
    for (cap_value_t cap : parent_caps) {
        cap_flag_value_t permitted = CAP_CLEAR;
        if (cap_get_flag(current.get(), cap, CAP_PERMITTED, &permitted) != 0)
            return fail(error, who + ": cap_get_flag(" + cap_name(cap) + ")", errno);
        if (permitted != CAP_SET || cap_get_bound(cap) != 1)
            return fail(error,
                who + ": " + cap_name(cap) + " is not in the permitted and bounding sets "
                    + "(restricted container?); workers could not be jailed without it");
    }

    // Bounding set first: shrinking it needs CAP_SETPCAP, which the next step gives up.
    for (cap_value_t cap = 0; cap < cap_max_bits(); ++cap) {
        if (is_parent_cap(cap) || cap_get_bound(cap) != 1)
            continue;
        if (cap_drop_bound(cap) != 0)
            return fail(
                error, who + ": dropping " + cap_name(cap) + " from the bounding set", errno);
        if (cap_get_bound(cap) != 0)
            return fail(error, who + ": " + cap_name(cap) + " is still in the bounding set");
    }
    if (!clear_ambient(who, error))
        return false;

    CapPtr wanted(cap_init());
    if (!wanted)
        return fail(error, who + ": cap_init", errno);
    const int n = static_cast<int>(std::size(parent_caps));
    if (cap_set_flag(wanted.get(), CAP_EFFECTIVE, n, parent_caps, CAP_SET) != 0
        || cap_set_flag(wanted.get(), CAP_PERMITTED, n, parent_caps, CAP_SET) != 0)
        return fail(error, who + ": cap_set_flag", errno);
    if (!set_caps(wanted.get(), who, error) || !set_no_new_privs(error))
        return false;
    kept = caps_text(wanted.get());
    return true;
}

} // namespace sniproxy
