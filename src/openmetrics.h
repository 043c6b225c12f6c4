// openmetrics.h: a Snapshot as the text a scraper reads, in OpenMetrics 1.0.0 or, when the
// scraper's Accept header does not ask for OpenMetrics, in the Prometheus text format 0.0.4.
// Pure: no I/O.
#pragma once

#include "metrics_store.h"

#include <string>
#include <string_view>

namespace sniproxy {

enum class MetricsFormat { openmetrics, prometheus };

// OpenMetrics when the Accept header names application/openmetrics-text with a q above
// zero and at least that of text/plain; otherwise (no header, */*, text/plain) Prometheus.
MetricsFormat choose_metrics_format(std::string_view accept);

// The Content-Type header value for the format.
std::string_view metrics_content_type(MetricsFormat format);

// The whole exposition. Series (OpenMetrics names; counters get _total on their samples):
//   sniproxyd_connections{route,result}        counter, every connection once when it ends
//   sniproxyd_bytes{route,direction}           counter, up (client to backend) and down
//   sniproxyd_rejected{reason}                 counter, every reason, zeros included
//   sniproxyd_connections_active{generation}   gauge
//   sniproxyd_workers{generation,state}        gauge, starting/ready/draining per generation
//   sniproxyd_worker_connections_active{generation,pid}, sniproxyd_worker_connections{...}
//   sniproxyd_hello_duration_seconds           histogram, accept to route decided
//   sniproxyd_open_fds{process[,pid]}          gauge, where the process published it
//   sniproxyd_route_overflow, sniproxyd_unslotted_workers   counters (limits of the store)
//   sniproxyd_start_time_seconds               gauge
//   sniproxyd_build{version}                   info (a gauge sniproxyd_build_info = 1)
std::string render_metrics(const Snapshot& snapshot, MetricsFormat format);

// A label value as both formats quote it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);

// Shortest round-trip decimal; "+Inf", "-Inf", "NaN". With `float_form`, integral values
// get ".0" (OpenMetrics writes le="1.0", the Prometheus text format le="1").
std::string format_metric_number(double value, bool float_form = false);

} // namespace sniproxy
