// access_log.cc: one walk over the record's fields, in the one order, written by a text or a
// JSON writer, so the two formats cannot drift apart.
#include "access_log.h"

#include "escape.h"

#include <string_view>
#include <type_traits>

namespace sniproxy {

namespace {

    // An optional field: written only when set (not empty, not 0).
    template <class Writer> void opt(Writer& w, std::string_view key, const std::string& value)
    {
        if (!value.empty())
            w.str(key, value);
    }
    template <class Writer, class N> void opt(Writer& w, std::string_view key, N value)
    {
        if (value != 0)
            w.num(key, value);
    }

    // Required fields are written even when empty (as "-").
    template <class Writer> void walk(const AccessRecord& r, Writer& w)
    {
        w.str("client", r.client);
        w.str("sni", r.sni);
        w.str("route", r.route);
        w.str("result", r.result);
        opt(w, "reason", r.reason);
        opt(w, "errno", r.error);
        opt(w, "alert", r.alert);
        w.num("up", r.up);
        w.num("down", r.down);
        w.num("ms", r.ms);
        opt(w, "via", r.via);
        opt(w, "alpn", r.alpn);
        opt(w, "ja4", r.ja4);
        opt(w, "moved", r.moved);
    }

    std::string_view or_dash(std::string_view value)
    {
        return value.empty() ? std::string_view("-") : value;
    }

    struct TextWriter {
        std::size_t value_max = access_value_max;
        std::string out;
        void key(std::string_view k)
        {
            if (!out.empty())
                out += ' ';
            out.append(k).append("=");
        }
        void str(std::string_view k, std::string_view value)
        {
            key(k);
            out += escape_log_value(or_dash(value), value_max);
        }
        template <class N> void num(std::string_view k, N value)
        {
            key(k);
            out += std::to_string(value);
        }
    };

    struct JsonWriter {
        std::size_t value_max = access_value_max;
        std::string out = "{";
        void key(std::string_view k)
        {
            if (out.size() > 1)
                out += ',';
            append_json_string(&out, k);
            out += ':';
        }
        void str(std::string_view k, std::string_view value)
        {
            key(k);
            append_json_string(&out, or_dash(value), value_max);
        }
        template <class N> void num(std::string_view k, N value)
        {
            key(k);
            out += std::to_string(value);
        }
    };

    template <class Writer> std::string format(const AccessRecord& r, std::size_t value_max)
    {
        Writer w;
        w.value_max = value_max;
        walk(r, w);
        if constexpr (std::is_same_v<Writer, JsonWriter>)
            w.out += '}';
        return std::move(w.out);
    }

} // namespace

std::string format_access_line(const AccessRecord& r, bool json, std::size_t max)
{
    // Halving until it fits. Real records have one hostile value, the SNI, which then fits
    // whatever it holds; 16 input bytes a value is the floor.
    for (std::size_t value_max = access_value_max;; value_max /= 2) {
        std::string line = json ? format<JsonWriter>(r, value_max) : format<TextWriter>(r, value_max);
        if (line.size() <= max || value_max <= 16)
            return line;
    }
}

std::string format_access_text(const AccessRecord& r)
{
    return format<TextWriter>(r, access_value_max);
}

std::string format_access_json(const AccessRecord& r)
{
    return format<JsonWriter>(r, access_value_max);
}

} // namespace sniproxy
