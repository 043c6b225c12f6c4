// http_request.cc: the request line and header fields of RFC 9112, strictly: lines end in
// LF (a CR before it is dropped), no whitespace before a field's colon, no obsolete line
// folding, no control bytes. Strictness costs a real scraper nothing and keeps the parser
// small enough to read in one sitting.
#include "http_request.h"

#include "ascii.h"

#include <cstring>

namespace sniproxy {

namespace {

    bool is_tchar(char c)
    {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
    }

    bool is_token(std::string_view s)
    {
        if (s.empty())
            return false;
        for (const char c : s)
            if (!is_tchar(c))
                return false;
        return true;
    }

    bool is_field_value_char(char c)
    {
        const auto u = static_cast<unsigned char>(c);
        return u == '\t' || (u >= 0x20 && u != 0x7f);
    }

} // namespace

HttpRequestParser::State HttpRequestParser::feed(std::span<const char> bytes)
{
    std::size_t at = 0;
    while (state_ == State::incomplete && at < bytes.size()) {
        const char* start = bytes.data() + at;
        const std::size_t left = bytes.size() - at;
        const void* lf = std::memchr(start, '\n', left);
        const std::size_t take
            = lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - start) : left;
        // Checked before copying, so a line never grows past its limit in memory. The
        // request line may have 8 KiB before its LF; the header section 8 KiB in all,
        // every CR and LF of it and the blank line included.
        const std::size_t size = partial_.size() + take + (lf && in_headers_ ? 1 : 0);
        if (!in_headers_ && size > max_request_line) {
            fail(414,
                "the request line is longer than " + std::to_string(max_request_line) + " bytes");
            break;
        }
        if (in_headers_ && size > max_header_bytes - header_bytes_) {
            fail(431,
                "the request's header fields are longer than " + std::to_string(max_header_bytes)
                    + " bytes");
            break;
        }
        if (in_headers_ && lf)
            header_bytes_ += size;
        // Control bytes cannot be in a request: say so now rather than at the line end,
        // which binary garbage may never send.
        for (std::size_t i = 0; i < take; ++i) {
            const auto u = static_cast<unsigned char>(start[i]);
            if ((u < 0x20 && u != '\r' && u != '\t') || u == 0x7f) {
                fail(400, "control bytes in the request");
                return state_;
            }
        }
        partial_.append(start, take);
        at += take;
        if (!lf)
            break;
        ++at; // the LF
        std::string current;
        current.swap(partial_);
        if (!current.empty() && current.back() == '\r')
            current.pop_back();
        line(current);
    }
    return state_;
}

void HttpRequestParser::fail(int status, std::string why)
{
    state_ = State::failed;
    status_ = status;
    error_ = std::move(why);
    partial_.clear();
    partial_.shrink_to_fit();
}

void HttpRequestParser::line(std::string_view text)
{
    if (text.find('\r') != std::string_view::npos)
        return fail(400, "a bare CR in the request");
    if (in_headers_)
        return header_line(text);
    // RFC 9112 2.2: empty lines before the request line are ignored, a few of them.
    if (text.empty()) {
        if (++empty_lines_ > max_empty_lines)
            fail(400, "the request is only empty lines");
        return;
    }
    request_line(text);
}

void HttpRequestParser::request_line(std::string_view text)
{
    const std::size_t sp1 = text.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : text.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || text.find(' ', sp2 + 1) != std::string_view::npos)
        return fail(400, "the request line is not METHOD TARGET VERSION");
    const std::string_view method = text.substr(0, sp1);
    const std::string_view target = text.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = text.substr(sp2 + 1);
    if (!is_token(method) || target.empty())
        return fail(400, "the request line is not METHOD TARGET VERSION");
    for (const char c : target)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return fail(400, "the request target has bytes that are not visible ASCII");
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.'
        || version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
        return fail(400, "the request line does not end in an HTTP version");
    if (version != "HTTP/1.1" && version != "HTTP/1.0")
        return fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
    if (method != "GET")
        return fail(405, "only GET is served");
    if (target.front() != '/')
        return fail(404, "only /metrics is served");
    const std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics" && path != "/")
        return fail(404, "only /metrics is served");
    in_headers_ = true;
}

void HttpRequestParser::header_line(std::string_view text)
{
    if (text.empty()) {
        state_ = State::done;
        status_ = 200;
        return;
    }
    if (++header_count_ > max_headers)
        return fail(
            431, "the request has more than " + std::to_string(max_headers) + " header fields");
    const std::size_t colon = text.find(':');
    if (colon == std::string_view::npos || !is_token(text.substr(0, colon)))
        return fail(400, "a header field is not NAME: VALUE (or is folded over lines)");
    const std::string_view value = trim_ows(text.substr(colon + 1));
    for (const char c : value)
        if (!is_field_value_char(c))
            return fail(400, "a header field value has control bytes");
    if (iequals_ascii(text.substr(0, colon), "accept")) {
        if (!accept_.empty())
            accept_ += ',';
        accept_.append(value);
    }
}

std::string_view http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

} // namespace sniproxy
