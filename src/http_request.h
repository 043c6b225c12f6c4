// http_request.h: the metrics scraper's HTTP request, parsed incrementally and bounded.
// Only `GET /metrics` (or `/`, any query ignored) over HTTP/1.0 or 1.1 is served; anything
// else ends in the status code to answer with. Pure: bytes in, a decision out; the caller
// owns the socket and decides 408 when the request does not arrive in time.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace sniproxy {

class HttpRequestParser {
public:
    static constexpr std::size_t max_request_line = 8192; // longer: 414
    static constexpr std::size_t max_header_bytes = 8192; // all header lines together: 431
    static constexpr std::size_t max_headers = 64; // more lines: 431
    static constexpr std::size_t max_empty_lines = 8; // before the request line; more: 400

    enum class State { incomplete, done, failed };

    // Consumes bytes until the request is complete or refused; bytes after that are
    // ignored (a scraper does not pipeline, and the answer closes the connection).
    State feed(std::span<const char> bytes);
    State state() const { return state_; }

    // 200 once done; 400, 404, 405, 414, 431 or 505 once failed; 0 while incomplete.
    int status() const { return status_; }
    // Why it failed, for the log (a sentence without the client's bytes).
    const std::string& error() const { return error_; }
    // The Accept header (repeated headers joined with ","); empty if none.
    const std::string& accept() const { return accept_; }

private:
    void fail(int status, std::string why);
    void request_line(std::string_view line);
    void header_line(std::string_view line);
    void line(std::string_view line);

    State state_ = State::incomplete;
    int status_ = 0;
    bool in_headers_ = false;
    std::size_t header_bytes_ = 0;
    std::size_t header_count_ = 0;
    std::size_t empty_lines_ = 0;
    std::string partial_; // the line read so far, without its LF
    std::string accept_;
    std::string error_;
};

// The reason phrase for the status codes the metrics server answers with.
std::string_view http_reason(int status);

} // namespace sniproxy
