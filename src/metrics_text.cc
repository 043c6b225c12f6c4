// metrics_text.cc: the sample lines of the exposition formats (both share them), parsed
// strictly enough that a truncated or foreign answer is an error, not a wrong number.
#include "metrics_text.h"

#include <cmath>
#include <cstdlib>

namespace sniproxy {

namespace {

    bool name_char(char c, bool first)
    {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'
            || (!first && c >= '0' && c <= '9');
    }

    bool parse_value(std::string_view text, double* out)
    {
        if (text == "+Inf" || text == "Inf") {
            *out = HUGE_VAL;
            return true;
        }
        if (text == "-Inf") {
            *out = -HUGE_VAL;
            return true;
        }
        const std::string s(text);
        char* end = nullptr;
        *out = std::strtod(s.c_str(), &end);
        return !s.empty() && end == s.c_str() + s.size();
    }

    // One sample line; returns "" or what is wrong with it.
    std::string parse_line(std::string_view line, MetricSample* s)
    {
        std::size_t i = 0;
        while (i < line.size() && name_char(line[i], i == 0))
            ++i;
        if (i == 0)
            return "no metric name";
        s->name = line.substr(0, i);
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                const std::size_t start = i;
                while (i < line.size() && name_char(line[i], i == start))
                    ++i;
                if (i == start || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"')
                    return "a label is not name=\"value\"";
                std::string key(line.substr(start, i - start)), value;
                for (i += 2; i < line.size() && line[i] != '"'; ++i) {
                    if (line[i] != '\\') {
                        value += line[i];
                        continue;
                    }
                    if (++i >= line.size())
                        return "a label value ends in a backslash";
                    value += line[i] == 'n' ? '\n' : line[i];
                }
                if (i >= line.size())
                    return "a label value has no closing quote";
                s->labels.emplace_back(std::move(key), std::move(value));
                if (++i < line.size() && line[i] == ',')
                    ++i;
            }
            if (i >= line.size())
                return "the labels have no closing brace";
            ++i;
        }
        if (i >= line.size() || line[i] != ' ')
            return "no value";
        std::string_view rest = line.substr(i + 1);
        const std::size_t space = rest.find(' '); // a timestamp may follow
        if (!parse_value(rest.substr(0, space), &s->value))
            return "the value is not a number";
        return "";
    }

} // namespace

std::string_view MetricSample::label(std::string_view key) const
{
    for (const auto& [k, v] : labels)
        if (k == key)
            return v;
    return {};
}

bool parse_metrics_text(std::string_view text, std::vector<MetricSample>* out, std::string* err)
{
    std::size_t number = 0;
    while (!text.empty()) {
        ++number;
        const std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty() || line.front() == '#')
            continue;
        MetricSample s;
        if (const std::string why = parse_line(line, &s); !why.empty()) {
            *err = "line " + std::to_string(number) + " of the metrics: " + why;
            return false;
        }
        out->push_back(std::move(s));
    }
    return true;
}

} // namespace sniproxy
