// settings.cc: the table of settings, their value syntax and the -f/-o precedence rules.
#include "settings.h"

#include "text_lines.h"

#include <sys/un.h>

#include <array>
#include <charconv>

namespace sniproxy {

namespace {
    bool parse_count(
        std::string_view v, unsigned min, unsigned max, unsigned* out, std::string* err)
    {
        unsigned n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec == std::errc::invalid_argument || end != v.data() + v.size()) {
            *err = "not a number: " + std::string(v);
            return false;
        }
        if (ec != std::errc() || n < min || n > max) {
            *err = "must be from " + std::to_string(min) + " to " + std::to_string(max) + ": "
                + std::string(v);
            return false;
        }
        *out = n;
        return true;
    }

    bool parse_rate(std::string_view v, SourceRate* out, std::string* err)
    {
        const auto slash = v.find('/');
        SourceRate r;
        if (!parse_count(v.substr(0, slash), 0, max_setting_count, &r.per_second, err))
            return false;
        r.burst = r.per_second;
        if (slash != std::string_view::npos) {
            if (!parse_count(v.substr(slash + 1), 1, max_setting_count, &r.burst, err)) {
                *err = "burst " + *err;
                return false;
            }
            if (r.per_second == 0) {
                *err = "a burst needs a rate (0 turns the limit off): " + std::string(v);
                return false;
            }
        }
        *out = r;
        return true;
    }

    bool parse_metrics(std::string_view v, std::optional<MetricsAddress>* out, std::string* err)
    {
        MetricsAddress m;
        m.text = v;
        if (v.starts_with("unix:")) {
            m.unix_path = v.substr(5);
            if (m.unix_path.empty() || m.unix_path[0] != '/') {
                *err = "unix:PATH needs an absolute path: " + std::string(v);
                return false;
            }
            if (m.unix_path.size() >= sizeof(sockaddr_un {}.sun_path)) {
                *err = "the path is longer than a socket address holds ("
                    + std::to_string(sizeof(sockaddr_un {}.sun_path) - 1) + " bytes): " + m.text;
                return false;
            }
        } else if (std::string e; !parse_listen_address(v, &m.inet, &e)) {
            // The listener syntax's message names -l; keep only its reason.
            const auto reason = e.find("': ");
            *err = (reason == std::string::npos ? e : e.substr(reason + 3))
                + " (ADDR:PORT or unix:PATH): " + std::string(v);
            return false;
        }
        *out = std::move(m);
        return true;
    }

    bool parse_log_format(std::string_view v, Settings* s, std::string* err)
    {
        if (v != "text" && v != "json") {
            *err = "must be text or json: " + std::string(v);
            return false;
        }
        s->log_format = v == "json" ? LogFormat::json : LogFormat::text;
        return true;
    }

    bool parse_move(std::string_view v, Settings* s, std::string* err)
    {
        if (v != "yes" && v != "no") {
            *err = "must be yes or no: " + std::string(v);
            return false;
        }
        s->move_connections = v == "yes";
        return true;
    }

    // A setting is a list of CIDRs, a whole number from 0 to max, or parsed by its own function.
    struct Setting {
        const char* name;
        CidrList Settings::*cidrs = nullptr;
        unsigned Settings::*count = nullptr;
        unsigned max = 0;
        bool (*parse)(std::string_view value, Settings* s, std::string* err) = nullptr;

        bool list() const { return cidrs != nullptr; }
        bool apply(std::string_view v, Settings* s, std::string* err) const
        {
            if (cidrs) {
                Cidr c;
                if (!parse_cidr(v, &c, err))
                    return false;
                (s->*cidrs).add(c);
                return true;
            }
            if (count)
                return parse_count(v, 0, max, &(s->*count), err);
            return parse(v, s, err);
        }
    };

    const std::array<Setting, 12> table { {
        { "allow", &Settings::allow },
        { "deny", &Settings::deny },
        { "source-max", nullptr, &Settings::source_max, max_setting_count },
        { "source-rate", nullptr, nullptr, 0,
            [](std::string_view v, Settings* s, std::string* e) {
                return parse_rate(v, &s->source_rate, e);
            } },
        { "source-hellos", nullptr, &Settings::source_hellos, max_setting_count },
        { "source-prefix4", nullptr, &Settings::source_prefix4, 32 },
        { "source-prefix6", nullptr, &Settings::source_prefix6, 128 },
        { "idle-timeout", nullptr, &Settings::idle_timeout, 86400 },
        { "proxy-from", &Settings::proxy_from },
        { "metrics", nullptr, nullptr, 0,
            [](std::string_view v, Settings* s, std::string* e) {
                return parse_metrics(v, &s->metrics, e);
            } },
        { "log-format", nullptr, nullptr, 0, parse_log_format },
        { "move-connections", nullptr, nullptr, 0, parse_move },
    } };

    // One source of settings (the file, or the -o items): where each scalar was first given.
    class Source {
    public:
        explicit Source(bool replaces_lists)
            : replaces_lists_(replaces_lists)
        {
        }

        // `where` is "line 3" for the file, "" for -o.
        bool apply(std::string_view item, const std::string& where, Settings* s, std::string* err)
        {
            const auto eq = item.find('=');
            const std::string_view name = trim_spaces(item.substr(0, eq));
            if (eq == std::string_view::npos) {
                *err = "expected name=value: " + std::string(item);
                return false;
            }
            const std::string_view value = trim_spaces(item.substr(eq + 1));
            std::size_t i = 0;
            while (i < table.size() && name != table[i].name)
                i++;
            if (i == table.size()) {
                *err = std::string(name) + ": unknown setting (see SETTINGS in sniproxyd(8))";
                return false;
            }
            const Setting& setting = table[i];
            const std::string prefix = std::string(setting.name) + ": ";
            if (value.empty()) {
                *err = prefix + "needs a value";
                return false;
            }
            if (!setting.list() && !first_[i].empty()) {
                *err = prefix + "given twice"
                    + (where.empty() ? "" : " (first on " + first_[i] + ")");
                return false;
            }
            if (setting.list() && replaces_lists_ && first_[i].empty())
                (s->*setting.cidrs) = CidrList {};
            first_[i] = where.empty() ? "-o" : where;
            if (!setting.apply(value, s, err)) {
                *err = prefix + *err;
                return false;
            }
            return true;
        }

    private:
        bool replaces_lists_;
        std::array<std::string, table.size()> first_ {};
    };
} // namespace

bool parse_settings(std::string_view file_name, std::string_view file_text,
    const std::vector<std::string>& overrides, Settings* out, std::string* err)
{
    Settings s;
    Source file(false);
    const bool file_ok
        = for_each_content_line(file_text, [&](std::size_t number, std::string_view line) {
              const std::string where = "line " + std::to_string(number);
              if (file.apply(line, where, &s, err))
                  return true;
              *err = "settings file " + std::string(file_name) + " " + where + ": " + *err;
              return false;
          });
    if (!file_ok)
        return false;
    Source command_line(true);
    for (const std::string& item : overrides) {
        if (!command_line.apply(item, "", &s, err)) {
            *err = "-o " + *err;
            return false;
        }
    }
    *out = std::move(s);
    return true;
}

std::vector<std::string> settings_items(const Settings& s)
{
    std::vector<std::string> items;
    const auto cidrs = [&](const char* name, const CidrList& list) {
        for (const Cidr& c : list.items())
            items.push_back(std::string(name) + "=" + format_cidr(c));
    };
    const auto scalar = [&](const char* name, const std::string& value) {
        items.push_back(std::string(name) + "=" + value);
    };
    cidrs("allow", s.allow);
    cidrs("deny", s.deny);
    scalar("source-max", std::to_string(s.source_max));
    scalar("source-rate",
        std::to_string(s.source_rate.per_second)
            + (s.source_rate.per_second ? "/" + std::to_string(s.source_rate.burst) : ""));
    scalar("source-hellos", std::to_string(s.source_hellos));
    scalar("source-prefix4", std::to_string(s.source_prefix4));
    scalar("source-prefix6", std::to_string(s.source_prefix6));
    scalar("idle-timeout", std::to_string(s.idle_timeout));
    cidrs("proxy-from", s.proxy_from);
    if (s.metrics)
        scalar("metrics", s.metrics->text);
    scalar("log-format", s.log_format == LogFormat::json ? "json" : "text");
    scalar("move-connections", s.move_connections ? "yes" : "no");
    return items;
}

std::string render_settings(const Settings& s)
{
    std::string out;
    if (s.allow.empty())
        out += "# allow: none given, every source may connect\n";
    if (s.deny.empty())
        out += "# deny: none given\n";
    if (s.proxy_from.empty())
        out += "# proxy-from: none given, no PROXY headers are read\n";
    if (!s.metrics)
        out += "# metrics: off\n";
    for (const std::string& item : settings_items(s))
        out += item + "\n";
    return out;
}

} // namespace sniproxy
