// accept_gate.h: the parent's decision on each accepted connection, before any byte is read:
// allow/deny and the per-source limits (SourceLimits::admit), the refusal's log line (as a
// worker's, rate-limited by RefusalLog) and the trust in proxy-from balancers, whose
// connections are counted only when the worker reports the source in their PROXY header.
#pragma once

#include "refusal_log.h"
#include "settings.h"
#include "source_limits.h"

#include <sys/socket.h>

#include <array>
#include <cstdint>

namespace sniproxy {

class AcceptGate {
public:
    AcceptGate(const Settings& settings, std::array<std::uint64_t, 2> hash_key);

    // SIGHUP: the new lists and limits apply to new connections; counts are kept.
    void configure(const Settings& settings);

    // True: hand the connection over, counted under *key. False: refused, its line logged
    // (or counted as suppressed); the caller closes it at once.
    // *refused (if given) says why, for the refusal counters.
    bool admit(const sockaddr_storage& peer, std::int64_t now_ns, SourceKey* key,
        Verdict* refused = nullptr);
    // From a proxy-from balancer: its PROXY header comes first, its own address is trusted.
    bool is_balancer(const sockaddr_storage& peer) const
    {
        return !proxy_from_.empty() && proxy_from_.contains(ip_of(peer));
    }
    // About once a second: tells the count of lines suppressed in a second that is over.
    void tick(std::int64_t now_ns);

    SourceLimits& limits() { return limits_; }

private:
    CidrList proxy_from_;
    bool json_ = false;
    SourceLimits limits_;
    RefusalLog log_;
};

// Random bytes for SourceLimits' hash (getrandom); zeros if the kernel has none to give.
std::array<std::uint64_t, 2> random_hash_key();

} // namespace sniproxy
