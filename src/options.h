// options.h: the command line of sniproxyd (a stable contract, see sniproxyd(8)), parsed
// without side effects so that every rule can be tested directly.
#pragma once

#include "identity.h"
#include "settings.h"

#include <sys/types.h>

#include <string>
#include <vector>

namespace sniproxy {

struct Options {
    bool foreground = false; // -d
    bool check_only = false; // -n
    int verbosity = 0; // -v, repeatable
    std::string hosts_dir; // -H
    std::vector<std::string> listen; // -l, repeatable
    std::string user; // -u
    int workers = 0; // -w; 0 means one per online CPU
    int hello_timeout = 10; // -T seconds
    int grace = 10; // -g seconds
    std::string pidfile; // -p
    bool all_hashed = false; // -a: every host directory is a hashed name
    int max_connections = 0; // -c per worker; 0 derives it from RLIMIT_NOFILE
    bool help = false; // -h
    bool version = false; // -V
    std::string settings_file; // -f, read by load_settings (settings_file.h)
    std::vector<std::string> settings; // -o name=value, repeatable, in order

    // Internal: set by the parent when it execs a worker (-W fd:generation:uid:gid:jail), with
    // its metrics slot (-M fd:slot) when metrics are on. The metrics server is started with
    // -W (its channel and identity) and -S listen-fd:region-fd.
    struct Worker : Identity {
        int channel_fd = -1;
        unsigned generation = 0;
        int hosts_fd = -1; // the generation's hosts directory (O_PATH), or -1: use -H
        int metrics_fd = -1; // the shared metrics region (worker: read-write; server: read-only)
        int metrics_slot = -1; // the worker's slot in it
        int metrics_listen_fd = -1; // the metrics server's listener
    } worker;
    bool is_worker = false;
    bool is_metrics_server = false; // -S
};

// Fills `*options` (defaults from configure first); false and a one-line `*err` if the
// command line is wrong.
bool parse_options(int argc, char* const argv[], Options* options, std::string* err);
std::string usage_text();
// The argv a worker is started with: the options it needs and the settings in effect as -o
// items (a jailed worker cannot read the -f file), nothing else.
std::vector<std::string> worker_arguments(
    const Options& options, const Options::Worker& w, const Settings& settings);
// The argv of the metrics server: -W (channel, identity), -S, -H and -v.
std::vector<std::string> metrics_server_arguments(const Options& options, const Options::Worker& w);

} // namespace sniproxy
