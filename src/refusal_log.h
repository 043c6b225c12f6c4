// refusal_log.h: rate limiting of the log lines for refused connections, so that a flood
// cannot fill the disk: at most N lines a second, then one line with the count suppressed.
// Pure: the caller passes the time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sniproxy {

class RefusalLog {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr unsigned default_per_second = 100;

    explicit RefusalLog(unsigned per_second = default_per_second)
        : per_second_(per_second)
    {
    }

    struct Permit {
        // Log suppressed_message(suppressed) first when this is not zero: the count of the
        // lines left out in the seconds before.
        std::uint64_t suppressed = 0;
        bool log = false; // log this refusal's line
    };
    // For each refused connection.
    Permit refusal(Clock::time_point now);
    // From a timer about once a second, so the count is told even when the flood has stopped:
    // the lines suppressed in a second that is over (then log suppressed_message), or 0.
    std::uint64_t expire(Clock::time_point now);

private:
    unsigned per_second_;
    Clock::time_point window_start_ {};
    bool started_ = false;
    unsigned logged_ = 0;
    std::uint64_t suppressed_ = 0;
};

// "1234 refusal log lines suppressed"
std::string suppressed_message(std::uint64_t count);

} // namespace sniproxy
