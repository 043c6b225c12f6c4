// metrics_text.h: reading Prometheus / OpenMetrics exposition text back into samples, for
// `sniproxyctl status`. Pure. Comment lines (# HELP, # TYPE, # EOF) are skipped; the sample
// lines are what status needs.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sniproxy {

struct MetricSample {
    std::string name; // with its suffix: sniproxyd_connections_total
    std::vector<std::pair<std::string, std::string>> labels; // in the order written
    double value = 0;

    // The value of label `key`, or "" when it has none.
    std::string_view label(std::string_view key) const;
};

// name{label="value",...} value [timestamp], one a line. Label values are unescaped
// (\\, \", \n). False with *err naming the line on anything malformed.
bool parse_metrics_text(std::string_view text, std::vector<MetricSample>* out, std::string* err);

} // namespace sniproxy
