// parent_spawn.cc: how the parent starts processes (its Spawner): workers by fork + exec of
// this same binary (/proc/self/exe) with their channel, the generation's hosts directory and
// their metrics slot as descriptors 3, 4, ...; the new binary of a SIGUSR2 upgrade with the
// listening sockets.
#include "parent.h"

#include "log.h"
#include "metrics_process.h"
#include "parent_channel.h"
#include "parent_upgrade.h"
#include "spawn.h"
#include "upgrade_channel.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sniproxy {

bool Parent::spawn_worker(unsigned generation, WorkerSlot* out, std::string* err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        *err = errno_message("socketpair for a worker", errno);
        return false;
    }
    UniqueFd mine(sv[0]), theirs(sv[1]);
    if (generation != generation_dir_of_ || !generation_dir_) {
        generation_dir_.reset(open(options_.hosts_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        generation_dir_of_ = generation;
        // Not fatal here: the worker then tries the path itself and says what is wrong.
        if (!generation_dir_)
            logf_errno(LogLevel::warning, "generation %u: hosts directory %s", generation,
                options_.hosts_dir.c_str());
    }
    // The worker's end becomes its fd 3 (the generation's hosts directory its fd 4);
    // /proc/self/exe is the running binary even if the file on disk was replaced, so a
    // generation never mixes versions.
    Options::Worker spec;
    static_cast<Identity&>(spec) = identity_;
    spec.channel_fd = 3;
    spec.generation = generation;
    std::vector<int> inherit { theirs.get() }; // each becomes fd 3, 4, ... in the worker
    if (metrics_) // its own slot of the metrics region (none when all are taken)
        spec.metrics_slot = metrics_->store().claim_slot(generation);
    if (spec.metrics_slot >= 0) {
        spec.metrics_fd = 3 + static_cast<int>(inherit.size());
        inherit.push_back(metrics_->store().fd());
    }
    if (generation_dir_) {
        spec.hosts_fd = 3 + static_cast<int>(inherit.size());
        inherit.push_back(generation_dir_.get());
    }
    pid_t pid;
    if (!spawn(
            { "/proc/self/exe", worker_arguments(options_, spec, settings_), inherit, false, {} },
            &pid, err)) {
        if (metrics_)
            metrics_->store().release_slot(spec.metrics_slot);
        return false;
    }
    if (metrics_)
        metrics_->store().set_worker(spec.metrics_slot, pid);
    out->metrics_slot = spec.metrics_slot;
    out->pid = pid;
    out->channel = std::make_unique<Channel>(*this, std::move(mine), *out);
    return true;
}

// SIGUSR2: the binary now at the start-up path, with our listening sockets (systemd's
// LISTEN_FDS protocol).
bool Parent::spawn_upgrade(pid_t* pid, std::string* err)
{
    std::vector<int> fds;
    for (const UniqueFd& l : listeners_)
        fds.push_back(l.get());
    std::vector<std::string> env { "SNIPROXYD_UPGRADE_FROM=" + std::to_string(getpid()) };
    // The channel established connections move over, after the listeners (not one of
    // LISTEN_FDS). Without it the upgrade is a plain drain, as before.
    int sv[2];
    UniqueFd mine, theirs;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0) {
        mine.reset(sv[0]);
        theirs.reset(sv[1]);
        env.push_back(std::string(upgrade_channel_env) + "=" + std::to_string(3 + fds.size()));
        fds.push_back(theirs.get());
    } else {
        logf_errno(LogLevel::err, "SIGUSR2: socketpair for the upgrade channel (no moving)");
    }
    SpawnRequest request { invocation_.exe, invocation_.args, fds, true, env, false };
    request.not_listening = theirs ? 1 : 0;
    if (!spawn(request, pid, err))
        return false;
    if (mine)
        open_upgrade_channel(std::move(mine), true);
    logf(LogLevel::notice,
        "SIGUSR2: started %s as pid %d; it takes over when its workers are ready",
        invocation_.exe.c_str(), static_cast<int>(*pid));
    return true;
}

void Parent::kill(pid_t pid, int sig)
{
    ::kill(pid, sig);
}

} // namespace sniproxy
