// metrics_main.cc: the metrics server process. Its log records go to the parent over its
// channel, as a worker's do (it has no syslog and no terminal in its jail).
#include "metrics_main.h"

#include "log.h"
#include "metrics_seccomp.h"
#include "metrics_server.h"
#include "protocol.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace sniproxy {

int metrics_server_main(const Options& o)
{
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_NAME, "sniproxyd-met");
    log_set_verbosity(o.verbosity);
    const int channel = o.worker.channel_fd;
    log_set_sink([channel](LogLevel l, std::string_view t) {
        send(channel, encode(LogMsg { l, t })); // a full channel drops the record
    });
    MetricsStore store;
    std::string err;
    const bool mapped = store.open_readonly(o.worker.metrics_fd, &err);
    close(o.worker.metrics_fd); // the mapping stays; the descriptor is not needed in the jail
    if (!mapped) {
        logf(LogLevel::err, "metrics server: %s", err.c_str());
        return 1;
    }
    MetricsServerOptions options;
    options.parent_fd = channel;
    options.enter_sandbox = [&o] {
        std::string e;
        if (sandbox_metrics_server(o.hosts_dir, o.worker.jail ? &o.worker : nullptr, &e))
            return true;
        logf(LogLevel::err, "%s", e.c_str());
        return false;
    };
    return run_metrics_server(o.worker.metrics_listen_fd, store, options);
}

} // namespace sniproxy
