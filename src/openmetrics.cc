// openmetrics.cc: rendering a Snapshot as exposition text, and choosing the format from
// the scraper's Accept header. The two formats differ in little: a counter's family name
// (OpenMetrics drops _total from the TYPE line), the info type, le="1.0" against le="1",
// and the closing "# EOF".
#include "openmetrics.h"

#include "ascii.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <utility>

namespace sniproxy {

namespace {

    // q of one media range ("type/sub;a=b;q=0.5"), 1 when absent; -1 if it is not `type`.
    double quality_for(std::string_view range, std::string_view type)
    {
        std::size_t semi = range.find(';');
        if (!iequals_ascii(trim_ows(range.substr(0, semi)), type))
            return -1;
        double q = 1;
        while (semi != std::string_view::npos) {
            range.remove_prefix(semi + 1);
            semi = range.find(';');
            const std::string_view param = trim_ows(range.substr(0, semi));
            if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
                const std::string value(trim_ows(param.substr(2)));
                char* end = nullptr;
                q = std::strtod(value.c_str(), &end);
                if (end == value.c_str() || *end != '\0' || !(q >= 0 && q <= 1))
                    q = 0; // an unreadable q is not a wish for this type
            }
        }
        return q;
    }

    double best_quality(std::string_view accept, std::string_view type)
    {
        double best = -1;
        while (!accept.empty()) {
            const std::size_t comma = accept.find(',');
            best = std::max(best, quality_for(accept.substr(0, comma), type));
            if (comma == std::string_view::npos)
                break;
            accept.remove_prefix(comma + 1);
        }
        return best;
    }

    std::string number(std::uint64_t v)
    {
        char buf[24];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        return std::string(buf, r.ptr);
    }

    using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

    class Writer {
    public:
        explicit Writer(MetricsFormat f)
            : om_(f == MetricsFormat::openmetrics)
        {
        }

        // A family's HELP and TYPE lines; `type` is counter, gauge, histogram or info.
        void family(std::string_view name, std::string_view type, std::string_view help)
        {
            std::string family(name);
            std::string_view shown = type;
            if (type == "counter" && !om_)
                family += "_total";
            if (type == "info" && !om_) {
                family += "_info";
                shown = "gauge";
            }
            out_ += "# HELP " + family + " " + std::string(help) + "\n";
            out_ += "# TYPE " + family + " " + std::string(shown) + "\n";
        }

        void sample(std::string_view name, Labels labels, std::string_view value)
        {
            out_ += name;
            if (labels.size()) {
                out_ += '{';
                bool first = true;
                for (const auto& [k, v] : labels) {
                    if (!first)
                        out_ += ',';
                    first = false;
                    out_ += k;
                    out_ += "=\"";
                    out_ += escape_label_value(v);
                    out_ += '"';
                }
                out_ += '}';
            }
            out_ += ' ';
            out_ += value;
            out_ += '\n';
        }

        bool openmetrics() const { return om_; }
        std::string finish()
        {
            if (om_)
                out_ += "# EOF\n";
            return std::move(out_);
        }

    private:
        bool om_;
        std::string out_;
    };

    void connections(Writer& w, const Snapshot& s)
    {
        w.family(
            "sniproxyd_connections", "counter", "Connections that ended, by route and result.");
        for (const RouteTotals& r : s.routes)
            for (std::size_t i = 0; i < conn_result_count; ++i)
                if (r.results[i])
                    w.sample("sniproxyd_connections_total",
                        { { "route", r.route }, { "result", conn_result_name(ConnResult(i)) } },
                        number(r.results[i]));
        w.family("sniproxyd_bytes", "counter",
            "Bytes relayed, by route and direction (up: client to backend).");
        for (const RouteTotals& r : s.routes) {
            if (!r.up && !r.down)
                continue;
            w.sample("sniproxyd_bytes_total", { { "route", r.route }, { "direction", "up" } },
                number(r.up));
            w.sample("sniproxyd_bytes_total", { { "route", r.route }, { "direction", "down" } },
                number(r.down));
        }
        w.family("sniproxyd_rejected", "counter", "Connections refused, by reason.");
        for (std::size_t i = 0; i < reject_reason_count; ++i)
            w.sample("sniproxyd_rejected_total",
                { { "reason", reject_reason_name(RejectReason(i)) } }, number(s.rejected[i]));
    }

    void workers(Writer& w, const Snapshot& s)
    {
        std::map<unsigned, std::uint64_t> active;
        std::map<unsigned, std::array<std::uint64_t, worker_state_count>> states;
        for (const WorkerTotals& t : s.workers) {
            active[t.generation] += t.active;
            states[t.generation][static_cast<std::size_t>(t.state) % worker_state_count]++;
        }
        w.family("sniproxyd_connections_active", "gauge", "Connections open now, by generation.");
        for (const auto& [gen, n] : active)
            w.sample("sniproxyd_connections_active", { { "generation", number(gen) } }, number(n));
        w.family("sniproxyd_connections_moved", "counter",
            "Established connections moved into a generation (rollover, upgrade), by generation.");
        for (const auto& [gen, n] : s.moved)
            w.sample("sniproxyd_connections_moved_total", { { "generation", number(gen) } },
                number(n));
        w.family("sniproxyd_workers", "gauge", "Worker processes, by generation and state.");
        for (const auto& [gen, counts] : states)
            for (WorkerState st :
                { WorkerState::starting, WorkerState::ready, WorkerState::draining })
                w.sample("sniproxyd_workers",
                    { { "generation", number(gen) }, { "state", worker_state_name(st) } },
                    number(counts[static_cast<std::size_t>(st)]));
        w.family(
            "sniproxyd_worker_connections_active", "gauge", "Connections open now, by worker.");
        for (const WorkerTotals& t : s.workers)
            w.sample("sniproxyd_worker_connections_active",
                { { "generation", number(t.generation) }, { "pid", number(t.pid) } },
                number(t.active));
        w.family("sniproxyd_worker_connections", "counter", "Connections that ended, by worker.");
        for (const WorkerTotals& t : s.workers)
            w.sample("sniproxyd_worker_connections_total",
                { { "generation", number(t.generation) }, { "pid", number(t.pid) } },
                number(t.handled));
    }

    void hello_histogram(Writer& w, const Snapshot& s)
    {
        w.family("sniproxyd_hello_duration_seconds", "histogram",
            "Time from accept to the route decided.");
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < hello_bucket_count; ++i) {
            cumulative += s.hello_buckets[i];
            const std::string le = i < hello_bucket_bounds.size()
                ? format_metric_number(hello_bucket_bounds[i], w.openmetrics())
                : "+Inf";
            w.sample(
                "sniproxyd_hello_duration_seconds_bucket", { { "le", le } }, number(cumulative));
        }
        w.sample(
            "sniproxyd_hello_duration_seconds_sum", {}, format_metric_number(s.hello_sum_seconds));
        w.sample("sniproxyd_hello_duration_seconds_count", {}, number(s.hello_count));
    }

    void process_facts(Writer& w, const Snapshot& s)
    {
        w.family("sniproxyd_open_fds", "gauge", "Open file descriptors, by process.");
        if (s.parent_open_fds >= 0)
            w.sample("sniproxyd_open_fds", { { "process", "parent" } },
                number(static_cast<std::uint64_t>(s.parent_open_fds)));
        for (const WorkerTotals& t : s.workers)
            if (t.open_fds >= 0)
                w.sample("sniproxyd_open_fds",
                    { { "process", "worker" }, { "pid", number(t.pid) } },
                    number(static_cast<std::uint64_t>(t.open_fds)));
        w.family("sniproxyd_route_overflow", "counter",
            "Connections counted under route - because a worker's route table was full.");
        w.sample("sniproxyd_route_overflow_total", {}, number(s.route_overflow));
        w.family("sniproxyd_unslotted_workers", "counter",
            "Workers started while every metrics slot was taken (their connections are not "
            "counted).");
        w.sample("sniproxyd_unslotted_workers_total", {}, number(s.unslotted_workers));
        w.family("sniproxyd_start_time_seconds", "gauge", "When the daemon started, in Unix time.");
        w.sample("sniproxyd_start_time_seconds", {}, format_metric_number(s.start_time_seconds));
        w.family("sniproxyd_build", "info", "The running version.");
        w.sample("sniproxyd_build_info", { { "version", s.version } }, "1");
    }

} // namespace

MetricsFormat choose_metrics_format(std::string_view accept)
{
    const double om = best_quality(accept, "application/openmetrics-text");
    const double text = best_quality(accept, "text/plain");
    return om > 0 && om >= text ? MetricsFormat::openmetrics : MetricsFormat::prometheus;
}

std::string_view metrics_content_type(MetricsFormat format)
{
    return format == MetricsFormat::openmetrics
        ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
        : "text/plain; version=0.0.4; charset=utf-8";
}

std::string render_metrics(const Snapshot& snapshot, MetricsFormat format)
{
    Writer w(format);
    connections(w, snapshot);
    workers(w, snapshot);
    hello_histogram(w, snapshot);
    process_facts(w, snapshot);
    return w.finish();
}

std::string escape_label_value(std::string_view value)
{
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string format_metric_number(double value, bool float_form)
{
    if (std::isnan(value))
        return "NaN";
    if (std::isinf(value))
        return value > 0 ? "+Inf" : "-Inf";
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);
    std::string out(buf, r.ptr);
    if (float_form && out.find_first_of(".e") == std::string::npos)
        out += ".0";
    return out;
}

} // namespace sniproxy
