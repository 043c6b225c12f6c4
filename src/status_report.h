// status_report.h: what `sniproxyctl status` shows, gathered from the samples of a scrape
// and printed for a person or as JSON for scripts. Pure.
#pragma once

#include "metrics_text.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sniproxy {

struct StatusReport {
    struct Generation {
        unsigned generation = 0;
        std::map<std::string, std::uint64_t> workers; // by state
        std::uint64_t active = 0;
    };
    struct Worker {
        std::string pid;
        unsigned generation = 0;
        std::uint64_t active = 0;
        std::uint64_t ended = 0;
        std::int64_t open_fds = -1;
    };
    struct Route {
        std::string route;
        std::map<std::string, std::uint64_t> results;
        std::uint64_t total = 0;
        std::uint64_t up = 0;
        std::uint64_t down = 0;
    };

    std::string version;
    double start_time = 0;
    std::vector<Generation> generations; // newest first
    std::vector<Worker> workers;
    std::vector<Route> routes; // by name
    std::map<std::string, std::uint64_t> rejected;
    std::uint64_t hello_count = 0;
    double hello_sum = 0;
    std::vector<std::pair<double, std::uint64_t>> hello_buckets; // le, cumulative count
    std::int64_t parent_open_fds = -1;
    std::uint64_t route_overflow = 0;
    std::uint64_t unslotted_workers = 0;
};

StatusReport summarize_metrics(const std::vector<MetricSample>& samples);

// For a person; `now` (Unix seconds) gives the uptime.
std::string format_status_text(const StatusReport& report, double now);
// One JSON object and a newline; the fields are listed in sniproxyctl(8).
std::string format_status_json(const StatusReport& report, double now);

} // namespace sniproxy
