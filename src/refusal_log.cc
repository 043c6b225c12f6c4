// refusal_log.cc: one-second windows counting the refusal lines logged and left out.
#include "refusal_log.h"

namespace sniproxy {

std::uint64_t RefusalLog::expire(Clock::time_point now)
{
    if (!started_ || now - window_start_ < std::chrono::seconds(1))
        return 0;
    started_ = false;
    logged_ = 0;
    const std::uint64_t n = suppressed_;
    suppressed_ = 0;
    return n;
}

RefusalLog::Permit RefusalLog::refusal(Clock::time_point now)
{
    Permit p;
    p.suppressed = expire(now);
    if (!started_) {
        started_ = true;
        window_start_ = now;
    }
    if (logged_ < per_second_) {
        logged_++;
        p.log = true;
    } else {
        suppressed_++;
    }
    return p;
}

std::string suppressed_message(std::uint64_t count)
{
    return std::to_string(count) + " refusal log line" + (count == 1 ? "" : "s") + " suppressed";
}

} // namespace sniproxy
