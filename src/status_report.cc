// status_report.cc: from samples to the status report, and its two printed forms. Label
// values come from whatever answered the scrape, so the text form escapes control bytes
// and the JSON form escapes everything JSON needs.
#include "status_report.h"

#include "log.h"
#include "openmetrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace sniproxy {

namespace {

    std::uint64_t count(double v)
    {
        return v >= 0 && v < 1.8e19 ? static_cast<std::uint64_t>(std::llround(v)) : 0;
    }

    unsigned generation_of(const MetricSample& s)
    {
        return static_cast<unsigned>(
            std::strtoul(std::string(s.label("generation")).c_str(), nullptr, 10));
    }

    StatusReport::Generation& generation(StatusReport& r, unsigned g)
    {
        for (auto& x : r.generations)
            if (x.generation == g)
                return x;
        r.generations.push_back({ g, {}, 0 });
        return r.generations.back();
    }

    StatusReport::Worker& worker(StatusReport& r, const MetricSample& s)
    {
        for (auto& w : r.workers)
            if (w.pid == s.label("pid"))
                return w;
        r.workers.push_back({ std::string(s.label("pid")), generation_of(s), 0, 0, -1 });
        return r.workers.back();
    }

    StatusReport::Route& route(
        std::map<std::string, StatusReport::Route>& routes, std::string_view name)
    {
        StatusReport::Route& r = routes[std::string(name)];
        r.route = name;
        return r;
    }

    // Bytes outside printable ASCII, and the backslash, as \xNN (for the terminal).
    std::string printable(std::string_view s)
    {
        return sanitize_log_text(s, 4 * s.size() + 1);
    }

    std::string json_string(std::string_view s)
    {
        std::string out = "\"";
        for (const char c : s) {
            const auto u = static_cast<unsigned char>(c);
            if (c == '"' || c == '\\') {
                out += '\\';
                out += c;
            } else if (u < 0x20 || u >= 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", u);
                out += buf;
            } else {
                out += c;
            }
        }
        return out + "\"";
    }

    std::string json_number(double v)
    {
        return std::isfinite(v) ? format_metric_number(v) : "null";
    }

    std::string duration(double seconds)
    {
        const auto s = static_cast<long long>(std::max(0.0, seconds));
        char buf[64];
        if (s >= 86400)
            std::snprintf(
                buf, sizeof buf, "%lldd %02lldh %02lldm", s / 86400, s / 3600 % 24, s / 60 % 60);
        else if (s >= 3600)
            std::snprintf(buf, sizeof buf, "%lldh %02lldm %02llds", s / 3600, s / 60 % 60, s % 60);
        else
            std::snprintf(buf, sizeof buf, "%lldm %02llds", s / 60, s % 60);
        return buf;
    }

    std::string utc(double t)
    {
        const std::time_t secs = static_cast<std::time_t>(t);
        std::tm tm {};
        gmtime_r(&secs, &tm);
        char buf[32];
        std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
        return buf;
    }

    template <typename Map> std::string joined(const Map& m, bool skip_zero)
    {
        std::string out;
        for (const auto& [k, v] : m) {
            if (skip_zero && !v)
                continue;
            out += (out.empty() ? "" : ", ") + printable(k) + " " + std::to_string(v);
        }
        return out.empty() ? "none" : out;
    }

} // namespace

StatusReport summarize_metrics(const std::vector<MetricSample>& samples)
{
    StatusReport r;
    std::map<std::string, StatusReport::Route> routes;
    for (const MetricSample& s : samples) {
        const std::string_view n = s.name;
        if (n == "sniproxyd_build_info")
            r.version = s.label("version");
        else if (n == "sniproxyd_start_time_seconds")
            r.start_time = s.value;
        else if (n == "sniproxyd_connections_total") {
            StatusReport::Route& x = route(routes, s.label("route"));
            x.results[std::string(s.label("result"))] += count(s.value);
            x.total += count(s.value);
        } else if (n == "sniproxyd_bytes_total")
            (s.label("direction") == "up" ? route(routes, s.label("route")).up
                                          : route(routes, s.label("route")).down)
                += count(s.value);
        else if (n == "sniproxyd_rejected_total")
            r.rejected[std::string(s.label("reason"))] += count(s.value);
        else if (n == "sniproxyd_workers")
            generation(r, generation_of(s)).workers[std::string(s.label("state"))]
                += count(s.value);
        else if (n == "sniproxyd_connections_active")
            generation(r, generation_of(s)).active += count(s.value);
        else if (n == "sniproxyd_worker_connections_active")
            worker(r, s).active = count(s.value);
        else if (n == "sniproxyd_worker_connections_total")
            worker(r, s).ended = count(s.value);
        else if (n == "sniproxyd_open_fds" && s.label("process") == "parent")
            r.parent_open_fds = static_cast<std::int64_t>(count(s.value));
        else if (n == "sniproxyd_open_fds" && s.label("process") == "worker")
            worker(r, s).open_fds = static_cast<std::int64_t>(count(s.value));
        else if (n == "sniproxyd_hello_duration_seconds_bucket") {
            const std::string le(s.label("le"));
            r.hello_buckets.emplace_back(
                le == "+Inf" ? HUGE_VAL : std::strtod(le.c_str(), nullptr), count(s.value));
        } else if (n == "sniproxyd_hello_duration_seconds_count")
            r.hello_count = count(s.value);
        else if (n == "sniproxyd_hello_duration_seconds_sum")
            r.hello_sum = s.value;
        else if (n == "sniproxyd_route_overflow_total")
            r.route_overflow = count(s.value);
        else if (n == "sniproxyd_unslotted_workers_total")
            r.unslotted_workers = count(s.value);
    }
    for (auto& [name, x] : routes)
        r.routes.push_back(std::move(x));
    std::sort(r.generations.begin(), r.generations.end(),
        [](const auto& a, const auto& b) { return a.generation > b.generation; });
    std::sort(r.hello_buckets.begin(), r.hello_buckets.end());
    return r;
}

std::string format_status_text(const StatusReport& r, double now)
{
    std::string out = "sniproxyd " + printable(r.version.empty() ? "?" : r.version) + ", up "
        + duration(now - r.start_time) + " (since " + utc(r.start_time) + ")\n";
    if (r.generations.empty())
        out += "no workers\n";
    for (const auto& g : r.generations) {
        std::uint64_t n = 0;
        for (const auto& [state, k] : g.workers)
            n += k;
        out += "generation " + std::to_string(g.generation) + ": " + std::to_string(n)
            + (n == 1 ? " worker (" : " workers (") + joined(g.workers, true) + "), "
            + std::to_string(g.active) + " connections open\n";
    }
    for (const auto& w : r.workers) {
        out += "  worker " + printable(w.pid) + " (generation " + std::to_string(w.generation)
            + "): " + std::to_string(w.active) + " open, " + std::to_string(w.ended) + " ended";
        if (w.open_fds >= 0)
            out += ", " + std::to_string(w.open_fds) + " descriptors";
        out += "\n";
    }
    out += "connections by host and result:\n";
    if (r.routes.empty())
        out += "  none\n";
    for (const auto& x : r.routes)
        if (x.total)
            out += "  " + printable(x.route) + ": " + std::to_string(x.total) + " ("
                + joined(x.results, true) + ")\n";
    out += "bytes by host (up = client to backend):\n";
    for (const auto& x : r.routes)
        if (x.up || x.down)
            out += "  " + printable(x.route) + ": up " + std::to_string(x.up) + ", down "
                + std::to_string(x.down) + "\n";
    out += "refused: " + joined(r.rejected, true) + "\n";
    out += "hellos: " + std::to_string(r.hello_count);
    if (r.hello_count) {
        char buf[64];
        std::snprintf(
            buf, sizeof buf, ", mean %.3f s", r.hello_sum / static_cast<double>(r.hello_count));
        out += buf;
        for (const auto& [le, n] : r.hello_buckets)
            if (static_cast<double>(n) >= 0.99 * static_cast<double>(r.hello_count)) {
                out += ", 99% within "
                    + (std::isinf(le) ? std::string("+Inf") : format_metric_number(le)) + " s";
                break;
            }
    }
    out += "\n";
    if (r.parent_open_fds >= 0)
        out += "parent: " + std::to_string(r.parent_open_fds) + " descriptors\n";
    if (r.route_overflow)
        out += "note: " + std::to_string(r.route_overflow)
            + " connections counted under - (a worker's table of names was full)\n";
    if (r.unslotted_workers)
        out += "note: " + std::to_string(r.unslotted_workers)
            + " workers ran without counters (all slots taken)\n";
    return out;
}

std::string format_status_json(const StatusReport& r, double now)
{
    const auto object = [](const std::map<std::string, std::uint64_t>& m) {
        std::string out = "{";
        for (const auto& [k, v] : m)
            out += (out.size() > 1 ? "," : "") + json_string(k) + ":" + std::to_string(v);
        return out + "}";
    };
    std::string out = "{\"version\":" + json_string(r.version)
        + ",\"start_time\":" + json_number(r.start_time) + ",\"uptime_seconds\":"
        + json_number(std::floor(std::max(0.0, now - r.start_time))) + ",\"generations\":[";
    for (std::size_t i = 0; i < r.generations.size(); ++i) {
        const auto& g = r.generations[i];
        out += std::string(i ? "," : "") + "{\"generation\":" + std::to_string(g.generation)
            + ",\"workers\":" + object(g.workers)
            + ",\"connections_active\":" + std::to_string(g.active) + "}";
    }
    out += "],\"workers\":[";
    for (std::size_t i = 0; i < r.workers.size(); ++i) {
        const auto& w = r.workers[i];
        out += std::string(i ? "," : "") + "{\"pid\":" + json_string(w.pid) + ",\"generation\":"
            + std::to_string(w.generation) + ",\"connections_active\":" + std::to_string(w.active)
            + ",\"connections_ended\":" + std::to_string(w.ended)
            + ",\"open_fds\":" + (w.open_fds >= 0 ? std::to_string(w.open_fds) : "null") + "}";
    }
    out += "],\"routes\":[";
    for (std::size_t i = 0; i < r.routes.size(); ++i) {
        const auto& x = r.routes[i];
        out += std::string(i ? "," : "") + "{\"route\":" + json_string(x.route)
            + ",\"connections\":" + object(x.results) + ",\"bytes_up\":" + std::to_string(x.up)
            + ",\"bytes_down\":" + std::to_string(x.down) + "}";
    }
    out += "],\"rejected\":" + object(r.rejected)
        + ",\"hello\":{\"count\":" + std::to_string(r.hello_count)
        + ",\"sum_seconds\":" + json_number(r.hello_sum) + ",\"buckets\":[";
    for (std::size_t i = 0; i < r.hello_buckets.size(); ++i) {
        const auto& [le, n] = r.hello_buckets[i];
        out += std::string(i ? "," : "")
            + "{\"le\":" + (std::isinf(le) ? "\"+Inf\"" : json_number(le))
            + ",\"count\":" + std::to_string(n) + "}";
    }
    out += "]},\"parent_open_fds\":"
        + (r.parent_open_fds >= 0 ? std::to_string(r.parent_open_fds) : "null")
        + ",\"route_overflow\":" + std::to_string(r.route_overflow)
        + ",\"unslotted_workers\":" + std::to_string(r.unslotted_workers) + "}\n";
    return out;
}

} // namespace sniproxy
