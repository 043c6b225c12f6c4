// source_limits.cc: the per-source table: a chained hash of fixed entries, a free list and an
// idle list, and the decisions of admit().
//
// When the table is full. An entry without connections whose token bucket is full carries no
// state: forgetting it changes no decision, so such entries are dropped as soon as they are
// found. When every entry is in use a new source takes the entry idle the longest (its bucket
// has had the most time to refill, so forgetting it gives the least back). Only entries with
// open connections are never forgotten, because then a count would be lost and its limit
// switched off. If every entry holds connections, a new source is refused as limit-source
// (when any per-source limit is set): the table is full only with as many sources holding
// connections as it has entries, so it cannot be used to lift the limits of anyone already
// tracked, and it never grows. With no per-source limit set there is nothing to enforce, and
// the new connection is admitted without being counted.
#include "source_limits.h"

#include <bit>
#include <cstring>

namespace sniproxy {

namespace {
    std::int64_t nanoseconds(SourceLimits::Clock::time_point t)
    {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    }

    std::uint64_t rotl(std::uint64_t x, int b)
    {
        return (x << b) | (x >> (64 - b));
    }

    [[gnu::always_inline]] inline void sipround(
        std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2, std::uint64_t& v3)
    {
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
    }

    std::uint64_t load_le(const unsigned char* p, std::size_t n)
    {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; i++)
            v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
        return v;
    }
} // namespace

std::uint64_t siphash24(std::array<std::uint64_t, 2> key, const unsigned char* bytes, std::size_t n)
{
    std::uint64_t v0 = key[0] ^ 0x736f6d6570736575ULL, v1 = key[1] ^ 0x646f72616e646f6dULL;
    std::uint64_t v2 = key[0] ^ 0x6c7967656e657261ULL, v3 = key[1] ^ 0x7465646279746573ULL;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const std::uint64_t m = load_le(bytes + i, 8);
        v3 ^= m;
        sipround(v0, v1, v2, v3);
        sipround(v0, v1, v2, v3);
        v0 ^= m;
    }
    const std::uint64_t last = load_le(bytes + i, n - i) | (static_cast<std::uint64_t>(n) << 56);
    v3 ^= last;
    sipround(v0, v1, v2, v3);
    sipround(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (int r = 0; r < 4; r++)
        sipround(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

const char* verdict_name(Verdict v)
{
    switch (v) {
    case Verdict::ok:
        return "ok";
    case Verdict::denied:
        return "denied";
    case Verdict::limit_source:
        return "limit-source";
    case Verdict::limit_rate:
        return "limit-rate";
    case Verdict::limit_hellos:
        return "limit-hellos";
    }
    return "?";
}

SourceLimits::SourceLimits(
    const Settings& settings, std::array<std::uint64_t, 2> hash_key, std::size_t capacity)
    : settings_(settings)
    , hash_key_(hash_key)
    , entries_(std::max<std::size_t>(capacity, 1))
    , buckets_(std::bit_ceil(entries_.size()), none)
{
    for (std::uint32_t i = 0; i < entries_.size(); i++)
        entries_[i].chain = i + 1 < entries_.size() ? i + 1 : none;
    free_ = 0;
}

void SourceLimits::configure(const Settings& settings)
{
    settings_ = settings;
}

bool SourceLimits::limited() const
{
    return settings_.source_max || settings_.source_rate.per_second || settings_.source_hellos;
}

SourceKey SourceLimits::key_of(const IpAddress& source) const
{
    SourceKey key;
    if (source.family == 0)
        return key;
    key.prefix = static_cast<unsigned char>(
        source.family == AF_INET ? settings_.source_prefix4 : settings_.source_prefix6);
    key.address = mask_ip(source, key.prefix);
    return key;
}

std::uint32_t SourceLimits::bucket_of(const SourceKey& key) const
{
    unsigned char bytes[18];
    std::memcpy(bytes, key.address.bytes.data(), 16);
    bytes[16] = key.address.family;
    bytes[17] = key.prefix;
    return static_cast<std::uint32_t>(
        siphash24(hash_key_, bytes, sizeof bytes) & (buckets_.size() - 1));
}

std::uint32_t SourceLimits::find(const SourceKey& key) const
{
    for (std::uint32_t i = buckets_[bucket_of(key)]; i != none; i = entries_[i].chain) {
        const Entry& e = entries_[i];
        if (e.family == key.address.family && e.prefix == key.prefix
            && e.address == key.address.bytes)
            return i;
    }
    return none;
}

void SourceLimits::idle_push(std::uint32_t i)
{
    entries_[i].idle_prev = idle_tail_;
    entries_[i].idle_next = none;
    (idle_tail_ == none ? idle_head_ : entries_[idle_tail_].idle_next) = i;
    idle_tail_ = i;
}

void SourceLimits::idle_remove(std::uint32_t i)
{
    Entry& e = entries_[i];
    (e.idle_prev == none ? idle_head_ : entries_[e.idle_prev].idle_next) = e.idle_next;
    (e.idle_next == none ? idle_tail_ : entries_[e.idle_next].idle_prev) = e.idle_prev;
    e.idle_prev = e.idle_next = none;
}

// Unlinks an entry without connections from its bucket and the idle list and frees it.
void SourceLimits::release(std::uint32_t i)
{
    Entry& e = entries_[i];
    idle_remove(i);
    SourceKey key;
    key.address.family = e.family;
    key.address.bytes = e.address;
    key.prefix = e.prefix;
    std::uint32_t* link = &buckets_[bucket_of(key)];
    while (*link != i)
        link = &entries_[*link].chain;
    *link = e.chain;
    e = Entry {};
    e.chain = free_;
    free_ = i;
    used_--;
}

void SourceLimits::drop_forgettable(std::int64_t now)
{
    // A few per call keep admit() O(1) while the idle list drains over time.
    for (int n = 0; n < 2 && idle_head_ != none && entries_[idle_head_].tat <= now; n++)
        release(idle_head_);
}

std::uint32_t SourceLimits::insert(const SourceKey& key, std::int64_t now)
{
    if (free_ == none) {
        if (idle_head_ == none)
            return none;
        release(idle_head_);
    }
    const std::uint32_t i = free_;
    Entry& e = entries_[i];
    free_ = e.chain;
    e.address = key.address.bytes;
    e.family = key.address.family;
    e.prefix = key.prefix;
    e.tat = now; // the bucket starts full
    const std::uint32_t b = bucket_of(key);
    e.chain = buckets_[b];
    buckets_[b] = i;
    idle_push(i); // no connections yet: every entry without any is on the idle list
    used_++;
    return i;
}

Admission SourceLimits::admit_key(SourceKey key, std::int64_t now)
{
    drop_forgettable(now);
    key.counted = false;
    std::uint32_t i = find(key);
    if (i == none) {
        i = insert(key, now);
        if (i == none)
            return { limited() ? Verdict::limit_source : Verdict::ok, key };
    }
    Entry& e = entries_[i];
    if (settings_.source_max && e.connections >= settings_.source_max)
        return { Verdict::limit_source, key };
    if (settings_.source_hellos && e.hellos >= settings_.source_hellos)
        return { Verdict::limit_hellos, key };
    if (const SourceRate& r = settings_.source_rate; r.per_second) {
        const std::int64_t interval = 1000000000LL / r.per_second;
        const std::int64_t tat = std::max(e.tat, now);
        if (tat - now > (static_cast<std::int64_t>(r.burst) - 1) * interval)
            return { Verdict::limit_rate, key };
        e.tat = tat + interval;
    }
    if (e.connections == 0)
        idle_remove(i);
    e.connections++;
    e.hellos++;
    key.counted = true;
    return { Verdict::ok, key };
}

Admission SourceLimits::admit(const IpAddress& source, Clock::time_point now)
{
    if (settings_.deny.contains(source)
        || (!settings_.allow.empty() && !settings_.allow.contains(source)))
        return { Verdict::denied, key_of(source) };
    if (source.family == 0)
        return { Verdict::ok, {} };
    return admit_key(key_of(source), nanoseconds(now));
}

void SourceLimits::hello_done(const SourceKey& key)
{
    if (!key.counted)
        return;
    if (const std::uint32_t i = find(key); i != none && entries_[i].hellos > 0)
        entries_[i].hellos--;
}

void SourceLimits::closed(const SourceKey& key, bool was_in_hello)
{
    if (!key.counted)
        return;
    const std::uint32_t i = find(key);
    if (i == none || entries_[i].connections == 0)
        return;
    Entry& e = entries_[i];
    if (was_in_hello && e.hellos > 0)
        e.hellos--;
    if (--e.connections == 0)
        idle_push(i);
}

Admission SourceLimits::move(const SourceKey& from, const IpAddress& source, Clock::time_point now)
{
    closed(from, true);
    return admit(source, now);
}

SourceKey SourceLimits::count_established(SourceKey key, Clock::time_point now)
{
    drop_forgettable(nanoseconds(now));
    key.counted = false;
    std::uint32_t i = find(key);
    if (i == none && (i = insert(key, nanoseconds(now))) == none)
        return key;
    Entry& e = entries_[i];
    if (e.connections++ == 0)
        idle_remove(i);
    key.counted = true;
    return key;
}

SourceLimits::Counts SourceLimits::counts(const SourceKey& key) const
{
    const std::uint32_t i = find(key);
    if (i == none)
        return {};
    return { entries_[i].connections, entries_[i].hellos };
}

} // namespace sniproxy
