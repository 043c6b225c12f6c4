// source_limits.h: the parent's exact per-source accounting (allow/deny, source-max,
// source-rate, source-hellos) in a fixed-size table. Pure: the caller passes the time.
//
// Who calls what (all in the parent, which sees every connection, so the counts are exact
// across workers and generations by construction):
//   accept            admit(ip_of(peer), now): refuse at once unless verdict == ok; keep the
//                     returned key with the connection
//   hello done        hello_done(key)   (the worker has routed it, or it failed)
//   closed            closed(key, was_in_hello) (also for each connection of a dead worker)
//   PROXY header      move(key, real_source, now): the new key replaces the old one
// A connection from a proxy-from balancer is not admitted on accept (the balancer is trusted):
// keep key_of(balancer) with counted == false until move().
#pragma once

#include "cidr.h"
#include "settings.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

namespace sniproxy {

enum class Verdict { ok, denied, limit_source, limit_rate, limit_hellos };
// The log's result= value: "ok", "denied", "limit-source", "limit-rate", "limit-hellos".
const char* verdict_name(Verdict verdict);

struct SourceKey {
    IpAddress address; // masked to source-prefix4/6
    unsigned char prefix = 0;
    // The table counts this connection; hello_done and closed do nothing otherwise.
    bool counted = false;
    bool same_source(const SourceKey& o) const
    {
        return address == o.address && prefix == o.prefix;
    }
};

struct Admission {
    Verdict verdict = Verdict::ok;
    SourceKey key; // counted only when verdict == ok and the table holds the source
};

class SourceLimits {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::size_t default_capacity = 65536;

    // hash_key: random bytes from the caller (getrandom), so that nobody can choose source
    // addresses that collide in the table.
    SourceLimits(const Settings& settings, std::array<std::uint64_t, 2> hash_key,
        std::size_t capacity = default_capacity);

    // SIGHUP: new limits and lists apply to new connections; counts are kept. After a change
    // of source-prefix4/6, connections keep the key they were admitted under.
    void configure(const Settings& settings);

    SourceKey key_of(const IpAddress& source) const;
    Admission admit(const IpAddress& source, Clock::time_point now);
    void hello_done(const SourceKey& key);
    void closed(const SourceKey& key, bool was_in_hello);
    // The connection (in its hello phase, as a PROXY header comes first) now belongs to
    // `source`: releases `from` and admits it as a new connection of `source`. If refused,
    // the connection holds nothing (the returned key is not counted) and must be closed.
    Admission move(const SourceKey& from, const IpAddress& source, Clock::time_point now);
    // An established connection taken over (a move whose old worker ended, an upgrade):
    // counted for `key` past its hello, never refused and no source-rate token spent, as it
    // was admitted once already. The returned key is counted unless the table is full.
    SourceKey count_established(SourceKey key, Clock::time_point now);

    struct Counts {
        unsigned connections = 0;
        unsigned hellos = 0;
    };
    Counts counts(const SourceKey& key) const;
    std::size_t tracked_sources() const { return used_; }
    std::size_t capacity() const { return entries_.size(); }

private:
    static constexpr std::uint32_t none = UINT32_MAX;
    // 48 bytes; with its hash bucket head 52 bytes per tracked source (3.25 MiB for 65,536),
    // all allocated once by the constructor.
    struct Entry {
        std::array<unsigned char, 16> address {};
        unsigned char family = 0; // 0: free
        unsigned char prefix = 0;
        std::uint32_t connections = 0;
        std::uint32_t hellos = 0;
        std::uint32_t chain = none; // next in the bucket, or in the free list
        std::uint32_t idle_prev = none; // the idle list: entries without connections,
        std::uint32_t idle_next = none; // the longest idle first
        std::int64_t tat = 0; // source-rate as GCRA: the theoretical arrival time, in ns
    };
    static_assert(sizeof(Entry) == 48, "the man page promises 52 bytes per source");

public:
    // Memory per tracked source: its entry and its hash bucket's head.
    static constexpr std::size_t bytes_per_source = sizeof(Entry) + sizeof(std::uint32_t);

private:

    bool limited() const;
    std::uint32_t bucket_of(const SourceKey& key) const;
    std::uint32_t find(const SourceKey& key) const;
    std::uint32_t insert(const SourceKey& key, std::int64_t now);
    void release(std::uint32_t index);
    void idle_push(std::uint32_t index);
    void idle_remove(std::uint32_t index);
    Admission admit_key(SourceKey key, std::int64_t now);
    void drop_forgettable(std::int64_t now);

    Settings settings_;
    std::array<std::uint64_t, 2> hash_key_;
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> buckets_;
    std::uint32_t free_ = none;
    std::uint32_t idle_head_ = none, idle_tail_ = none;
    std::size_t used_ = 0;
};

// SipHash-2-4 (Aumasson and Bernstein), keyed with k0/k1, of `bytes`.
std::uint64_t siphash24(
    std::array<std::uint64_t, 2> key, const unsigned char* bytes, std::size_t n);

} // namespace sniproxy
