// access_log.cc: one walk over the record's fields, in the one order, written by a text or a
// JSON writer, so the two formats cannot drift apart.
#include "access_log.h"

#include "escape.h"

#include <string_view>

namespace sniproxy {

namespace {

    // Required fields are written even when empty (as "-"); optional ones only when set.
    template <class Writer> void walk(const AccessRecord& r, Writer& w)
    {
        w.str("client", r.client);
        w.str("sni", r.sni);
        w.str("route", r.route);
        w.str("result", r.result);
        if (!r.reason.empty())
            w.str("reason", r.reason);
        if (!r.error.empty())
            w.str("errno", r.error);
        if (r.alert != 0)
            w.num("alert", r.alert);
        w.num("up", r.up);
        w.num("down", r.down);
        w.num("ms", r.ms);
        if (!r.via.empty())
            w.str("via", r.via);
        if (!r.alpn.empty())
            w.str("alpn", r.alpn);
        if (!r.ja4.empty())
            w.str("ja4", r.ja4);
        if (r.moved != 0)
            w.num("moved", r.moved);
    }

    std::string_view or_dash(std::string_view value)
    {
        return value.empty() ? std::string_view("-") : value;
    }

    struct TextWriter {
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
            out += escape_log_value(or_dash(value), access_value_max);
        }
        template <class N> void num(std::string_view k, N value)
        {
            key(k);
            out += std::to_string(value);
        }
    };

    struct JsonWriter {
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
            append_json_string(&out, or_dash(value), access_value_max);
        }
        template <class N> void num(std::string_view k, N value)
        {
            key(k);
            out += std::to_string(value);
        }
    };

} // namespace

std::string format_access_text(const AccessRecord& r)
{
    TextWriter w;
    walk(r, w);
    return std::move(w.out);
}

std::string format_access_json(const AccessRecord& r)
{
    JsonWriter w;
    walk(r, w);
    w.out += '}';
    return std::move(w.out);
}

} // namespace sniproxy
