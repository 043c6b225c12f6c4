// sniproxyd.cc: main(). Parses options, binds or adopts listeners, resolves the worker
// user, daemonizes, drops the parent's capabilities and hands over to Parent::run().
// Started with -W it is a worker instead (the parent execs itself for each worker).
#include "config.h"
#include "hosts_check.h"
#include "listeners.h"
#include "log.h"
#include "metrics_main.h"
#include "metrics_process.h"
#include "options.h"
#include "parent.h"
#include "pipe_pool.h"
#include "sandbox.h"
#include "settings_file.h"
#include "spawn.h"
#include "upgrade_channel.h"
#include "worker.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

using namespace sniproxy;

namespace {

int fail(const std::string& message)
{
    std::fprintf(stderr, "sniproxyd: %s\n", message.c_str());
    return 1;
}

// -n: the options that can be judged without binding (listen addresses, the user, the
// settings, printed with -v), then the same findings as `sniproxyctl check`, with the worker
// user's permissions.
int check_only(const Options& o)
{
    std::vector<Finding> findings;
    Settings settings;
    if (std::string err; !load_settings(o, &settings, &err))
        findings.push_back({ Finding::Severity::error, "settings", err });
    else if (o.verbosity > 0)
        std::printf("%s", render_settings(settings).c_str());
    std::vector<ListenAddress> addresses;
    for (const std::string& l : o.listen) {
        if (std::string e; !parse_listen_address(l, &addresses, &e))
            findings.push_back({ Finding::Severity::error, "-l", e });
    }
    CheckOptions check;
    check.all_hashed = o.all_hashed;
    if (const passwd* pw = getpwnam(o.user.c_str())) {
        check.worker_uid = pw->pw_uid;
        check.worker_gid = pw->pw_gid;
    } else {
        findings.push_back({ Finding::Severity::error, "-u",
            o.user + ": no such user (create it, or choose another with -u)" });
    }
    for (Finding& f : check_hosts_dir(o.hosts_dir, check))
        findings.push_back(std::move(f));
    return print_findings(findings) ? 1 : 0;
}

bool open_or_adopt_listeners(
    const Options& o, bool upgrading, std::vector<UniqueFd>* out, std::string* err)
{
    std::vector<ListenAddress> addresses;
    if (upgrading) { // the old parent's sockets, whatever -l says
        std::string how, error;
        if (adopt_listeners(out, &how, &error))
            return true;
        return set_error(
            err, "upgrade: no listening sockets were passed" + (error.empty() ? "" : ": " + error));
    }
    if (o.listen.empty()) {
        std::string how;
        err->clear();
        if (adopt_listeners(out, &how, err)) {
            logf(LogLevel::notice, "listening on %zu socket(s) from %s", out->size(), how.c_str());
            detach_stdio_sockets();
            return true;
        }
        if (!err->empty())
            return false;
    }
    for (const std::string& l :
        o.listen.empty() ? std::vector<std::string> { "*:443" } : o.listen) {
        if (!parse_listen_address(l, &addresses, err))
            return false;
    }
    return bind_listeners(addresses, out, err);
}

// Whichever way the listeners came, silent clients wait in the kernel for a second before
// they reach accept (listeners.h).
bool open_listeners(const Options& o, bool upgrading, std::vector<UniqueFd>* out, std::string* err)
{
    if (!open_or_adopt_listeners(o, upgrading, out, err))
        return false;
    defer_accept(*out, defer_accept_seconds);
    return true;
}

// Lets each worker hold as many connections as the hard limit allows.
std::size_t raise_fd_limit(int configured)
{
    rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        const rlim_t before = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            logf(LogLevel::debug, "descriptor limit raised from %llu to %llu",
                static_cast<unsigned long long>(before),
                static_cast<unsigned long long>(rl.rlim_cur));
        else
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    // Per connection two sockets and, while its client sends bulk data, one pipe (two more;
    // at most pipe_pool::max_pipes pipes in all); 64 more for the worker itself.
    constexpr rlim_t pipe_fds = 2 * pipe_pool::max_pipes;
    const rlim_t avail = rl.rlim_cur > 64 ? rl.rlim_cur - 64 : 0;
    const std::size_t derived
        = std::max<rlim_t>(1, avail >= 2 * pipe_fds ? (avail - pipe_fds) / 2 : avail / 4);
    return configured > 0 ? std::min<std::size_t>(configured, derived) : derived;
}

bool write_pidfile(const std::string& path, std::string* err)
{
    const UniqueFd fd(
        open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd)
        return set_error(err, errno_message("pid file " + path, errno));
    const std::string pid = std::to_string(getpid()) + "\n";
    const ssize_t n = write(fd.get(), pid.data(), pid.size());
    if (n != static_cast<ssize_t>(pid.size()))
        return set_error(err,
            n < 0 ? errno_message("pid file " + path, errno)
                  : "pid file " + path + ": short write");
    return true;
}

pid_t read_pidfile(const std::string& path)
{
    FILE* f = std::fopen(path.c_str(), "re");
    long pid = 0;
    if (f) {
        if (std::fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        std::fclose(f);
    }
    return static_cast<pid_t>(pid);
}

} // namespace

int main(int argc, char* argv[])
{
    Options o;
    if (std::string e; !parse_options(argc, argv, &o, &e)) {
        std::fprintf(stderr, "sniproxyd: %s\n%s", e.c_str(), usage_text().c_str());
        return 1;
    }
    if (o.is_worker)
        return o.is_metrics_server ? metrics_server_main(o) : worker_main(o);
    if (o.help) {
        std::printf("%s", usage_text().c_str());
        return 0;
    }
    if (o.version) {
        std::printf("sniproxyd %s\n", PACKAGE_VERSION);
        return 0;
    }
    log_set_verbosity(o.verbosity);
    log_to_stderr();
    if (o.check_only)
        return check_only(o);
    std::error_code ec; // SIGHUP reads the -f file again, after daemon() went to /
    if (auto path = std::filesystem::absolute(o.settings_file, ec); !o.settings_file.empty() && !ec)
        o.settings_file = path.string();
    Settings settings; // re-read by load_settings on SIGHUP, keeping these if that fails
    if (std::string err; !load_settings(o, &settings, &err))
        return fail(err);

    Identity identity;
    if (geteuid() == 0) {
        const passwd* pw = getpwnam(o.user.c_str());
        if (!pw)
            return fail("user '" + o.user + "' does not exist: create it (useradd --system "
                + o.user + ") or choose another with -u");
        if (pw->pw_uid == 0)
            return fail("-u " + o.user + ": workers must not run as root");
        identity = { pw->pw_uid, pw->pw_gid, true };
    } else {
        std::fprintf(stderr,
            "sniproxyd: not running as root: workers cannot chroot or change "
            "user; they still get no_new_privs and seccomp\n");
        identity = { geteuid(), getegid(), false };
    }
    if (access(o.hosts_dir.c_str(), X_OK) != 0)
        return fail(errno_message("hosts directory " + o.hosts_dir, errno));

    // Set by the old parent on SIGUSR2 (see Parent::upgrade): we are its replacement.
    Invocation invocation { running_executable(), std::vector<std::string>(argv, argv + argc), 0, {} };
    if (const char* from = std::getenv("SNIPROXYD_UPGRADE_FROM")) {
        const std::string from_text = from; // unsetenv may free it
        invocation.upgrade_from = static_cast<pid_t>(std::atol(from_text.c_str()));
        unsetenv("SNIPROXYD_UPGRADE_FROM");
        // Only the parent that started us may be told to drain: a pid from the environment
        // is not trusted on its own.
        if (invocation.upgrade_from != getppid()) {
            std::fprintf(stderr,
                "sniproxyd: SNIPROXYD_UPGRADE_FROM=%s is not our parent; not an upgrade\n",
                from_text.c_str());
            invocation.upgrade_from = 0;
        }
    }
    const bool upgrading = invocation.upgrade_from > 0;
    if (const char* channel = std::getenv(upgrade_channel_env)) {
        const std::string fd_text = channel;
        unsetenv(upgrade_channel_env);
        if (std::string e;
            upgrading && !adopt_upgrade_channel(fd_text, &invocation.upgrade_channel, &e))
            std::fprintf(stderr, "sniproxyd: upgrade: %s; connections will not move\n", e.c_str());
    }

    signal(SIGPIPE, SIG_IGN);
    std::vector<UniqueFd> listeners;
    if (std::string e; !open_listeners(o, upgrading, &listeners, &e))
        return fail(e);
    const std::size_t max_per_worker = raise_fd_limit(o.max_connections);
    // Before anything is forked (the region is inherited) and while we may still bind.
    std::unique_ptr<MetricsProcess> metrics;
    if (settings.metrics) {
        metrics = std::make_unique<MetricsProcess>();
        if (std::string e; !metrics->open(*settings.metrics, PACKAGE_VERSION, &e)) {
            if (!upgrading)
                return fail(e);
            // The new binary of a SIGUSR2 upgrade runs under the old parent's filters, which
            // allow no new memory region or listener: the upgrade goes on without metrics.
            logf(LogLevel::err,
                "upgrade: %s; serving without metrics until a restart (sniproxyd(8), BUGS)",
                e.c_str());
            metrics.reset();
        }
    }

    if (!o.foreground)
        log_to_syslog();
    if (!o.foreground && !upgrading) { // an upgrade's new parent is detached already
        if (daemon(0, 0) != 0)
            return fail(errno_message("daemon", errno));
    }
    if (std::string e; !o.pidfile.empty() && !write_pidfile(o.pidfile, &e))
        logf(LogLevel::err, "%s", e.c_str());
    if (identity.jail) {
        std::string kept, error;
        if (!parent_drop_capabilities(kept, error)) {
            logf(LogLevel::err, "%s", error.c_str());
            return 1;
        }
        logf(LogLevel::debug, "parent keeps only %s", kept.c_str());
    }
    const std::string metrics_socket = settings.metrics ? settings.metrics->unix_path : "";
    if (std::string error;
        !confine_parent(invocation.exe, o.hosts_dir, o.pidfile, metrics_socket, &error)) {
        logf(LogLevel::err, "%s", error.c_str());
        return 1;
    }
    Parent parent(o, std::move(settings), std::move(invocation), std::move(listeners), identity,
        max_per_worker, metrics.get());
    const int status = parent.run();
    if (!o.pidfile.empty() && read_pidfile(o.pidfile) == getpid()) // not if a successor wrote it
        unlink(o.pidfile.c_str());
    return status;
}
