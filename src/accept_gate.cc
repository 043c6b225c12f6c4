// accept_gate.cc: admit or refuse on accept, and say so like a worker's connection line.
#include "accept_gate.h"

#include "access_log.h"
#include "listen_address.h"
#include "log.h"

#include <sys/random.h>

#include <chrono>

namespace sniproxy {

namespace {
    SourceLimits::Clock::time_point at(std::int64_t ns)
    {
        return SourceLimits::Clock::time_point(std::chrono::nanoseconds(ns));
    }
} // namespace

std::array<std::uint64_t, 2> random_hash_key()
{
    std::array<std::uint64_t, 2> key {};
    if (getrandom(key.data(), sizeof key, 0) != sizeof key)
        logf_errno(LogLevel::warning, "getrandom for the source table's hash key");
    return key;
}

AcceptGate::AcceptGate(const Settings& settings, std::array<std::uint64_t, 2> hash_key)
    : proxy_from_(settings.proxy_from)
    , json_(settings.log_format == LogFormat::json)
    , limits_(settings, hash_key)
{
}

void AcceptGate::configure(const Settings& settings)
{
    proxy_from_ = settings.proxy_from;
    json_ = settings.log_format == LogFormat::json;
    limits_.configure(settings);
}

bool AcceptGate::admit(
    const sockaddr_storage& peer, std::int64_t now_ns, SourceKey* key, Verdict* refused)
{
    const IpAddress ip = ip_of(peer);
    if (proxy_from_.contains(ip)) { // trusted: counted under the header's source later
        *key = limits_.key_of(ip);
        key->counted = false;
        return true;
    }
    const Admission a = limits_.admit(ip, at(now_ns));
    *key = a.key;
    if (a.verdict == Verdict::ok)
        return true;
    if (refused)
        *refused = a.verdict;
    const RefusalLog::Permit p = log_.refusal(at(now_ns));
    if (p.suppressed > 0)
        log_line(LogLevel::notice, suppressed_message(p.suppressed));
    if (p.log) {
        AccessRecord r;
        r.client = format_address(peer);
        r.result = verdict_name(a.verdict);
        log_line(LogLevel::info, json_ ? format_access_json(r) : format_access_text(r));
    }
    return false;
}

void AcceptGate::tick(std::int64_t now_ns)
{
    if (const std::uint64_t n = log_.expire(at(now_ns)); n > 0)
        log_line(LogLevel::notice, suppressed_message(n));
}

} // namespace sniproxy
