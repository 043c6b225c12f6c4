// source_limits_test.cc: per-source limits as a client would meet them, with a fake clock.
#include "catch.h"
#include "source_limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>

using namespace sniproxy;
using namespace std::chrono_literals;
using Clock = SourceLimits::Clock;

namespace {
const std::array<std::uint64_t, 2> key { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
const Clock::time_point t0 = Clock::time_point(1000s);

IpAddress ip(const char* text)
{
    IpAddress a;
    if (inet_pton(AF_INET, text, a.bytes.data()) == 1)
        a.family = AF_INET;
    else if (inet_pton(AF_INET6, text, a.bytes.data()) == 1)
        a.family = AF_INET6;
    return a;
}

Settings with(std::vector<std::string> items)
{
    Settings s;
    std::string err;
    INFO(err);
    REQUIRE(parse_settings("", "", items, &s, &err));
    return s;
}

IpAddress numbered(unsigned n) // 10.x.y.z
{
    IpAddress a;
    a.family = AF_INET;
    a.bytes[0] = 10;
    a.bytes[1] = static_cast<unsigned char>(n >> 16);
    a.bytes[2] = static_cast<unsigned char>(n >> 8);
    a.bytes[3] = static_cast<unsigned char>(n);
    return a;
}
} // namespace

TEST_CASE("siphash24 matches the reference vectors")
{
    unsigned char msg[15];
    for (unsigned i = 0; i < sizeof msg; i++)
        msg[i] = static_cast<unsigned char>(i);
    CHECK(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    CHECK(siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL);
}

TEST_CASE("the defaults admit everyone, and count")
{
    SourceLimits limits(Settings {}, key);
    for (int i = 0; i < 1000; i++)
        REQUIRE(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
    const Admission a = limits.admit(ip("192.0.2.1"), t0);
    CHECK(a.key.counted);
    CHECK(limits.counts(a.key).connections == 1001);
    CHECK(limits.counts(a.key).hellos == 1001);
}

TEST_CASE("deny wins over allow; everything else is not allowed")
{
    SourceLimits limits(with({ "allow=10.0.0.0/8", "allow=::1", "deny=10.66.0.0/16" }), key);
    CHECK(limits.admit(ip("10.1.2.3"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("::1"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("10.66.1.1"), t0).verdict == Verdict::denied);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::denied);
    CHECK(limits.admit(IpAddress {}, t0).verdict == Verdict::denied); // not IP: not in allow
    const Admission d = limits.admit(ip("10.66.1.1"), t0);
    CHECK(!d.key.counted);
    CHECK(limits.tracked_sources() == 2); // refused sources take no entry
    SourceLimits only_deny(with({ "deny=192.0.2.0/24" }), key);
    CHECK(only_deny.admit(ip("192.0.2.9"), t0).verdict == Verdict::denied);
    CHECK(only_deny.admit(ip("198.51.100.1"), t0).verdict == Verdict::ok);
    CHECK(verdict_name(Verdict::limit_hellos) == std::string("limit-hellos"));
}

TEST_CASE("source-max: at the limit served, one over refused, others unaffected, freed on close")
{
    SourceLimits limits(with({ "source-max=3" }), key);
    std::vector<Admission> held;
    for (int i = 0; i < 3; i++) {
        held.push_back(limits.admit(ip("192.0.2.1"), t0));
        REQUIRE(held.back().verdict == Verdict::ok);
    }
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_source);
    CHECK(limits.admit(ip("192.0.2.2"), t0).verdict == Verdict::ok);
    limits.hello_done(held[0].key); // an established connection still counts
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_source);
    limits.closed(held[0].key, false);
    CHECK(limits.counts(held[1].key).connections == 2);
    CHECK(limits.counts(held[1].key).hellos == 2); // the two still in their hello
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_source);
}

TEST_CASE("source-hellos counts only connections still in the hello phase")
{
    SourceLimits limits(with({ "source-hellos=2" }), key);
    const Admission a = limits.admit(ip("192.0.2.1"), t0);
    const Admission b = limits.admit(ip("192.0.2.1"), t0);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_hellos);
    limits.hello_done(a.key);
    const Admission c = limits.admit(ip("192.0.2.1"), t0);
    CHECK(c.verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_hellos);
    limits.closed(b.key, true); // closed during its hello (a timeout)
    CHECK(limits.counts(a.key).hellos == 1);
    CHECK(limits.counts(a.key).connections == 2);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
}

TEST_CASE("source-rate: a full bucket of BURST, then N a second")
{
    SourceLimits limits(with({ "source-rate=2/5" }), key);
    for (int i = 0; i < 5; i++)
        REQUIRE(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_rate);
    CHECK(limits.admit(ip("192.0.2.2"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 499ms).verdict == Verdict::limit_rate);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 500ms).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 500ms).verdict == Verdict::limit_rate);
    // Closing connections gives no tokens back; time does.
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 3s).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 3s).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 3s).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 3s).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 3s).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0 + 3s).verdict == Verdict::limit_rate);
}

TEST_CASE("source-rate without a burst allows N at once")
{
    SourceLimits limits(with({ "source-rate=3" }), key);
    for (int i = 0; i < 3; i++)
        REQUIRE(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_rate);
}

TEST_CASE("one source is the address masked to source-prefix4/6")
{
    SourceLimits limits(with({ "source-max=2" }), key);
    CHECK(limits.admit(ip("2001:db8:1:2::1"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("2001:db8:1:2:ffff::9"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("2001:db8:1:2::77"), t0).verdict == Verdict::limit_source);
    CHECK(limits.admit(ip("2001:db8:1:3::1"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
    CHECK(limits.admit(ip("192.0.2.2"), t0).verdict == Verdict::ok);

    SourceLimits by24(with({ "source-max=2", "source-prefix4=24", "source-prefix6=128" }), key);
    CHECK(by24.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
    CHECK(by24.admit(ip("192.0.2.2"), t0).verdict == Verdict::ok);
    CHECK(by24.admit(ip("192.0.2.3"), t0).verdict == Verdict::limit_source);
    CHECK(by24.admit(ip("2001:db8::1"), t0).verdict == Verdict::ok);
    CHECK(by24.admit(ip("2001:db8::2"), t0).verdict == Verdict::ok);
    CHECK(by24.admit(ip("2001:db8::2"), t0).verdict == Verdict::ok);
    CHECK(by24.admit(ip("2001:db8::2"), t0).verdict == Verdict::limit_source);
}

TEST_CASE("a PROXY header moves the connection to the real source")
{
    SourceLimits limits(with({ "source-max=1" }), key);
    const SourceKey balancer = limits.key_of(ip("192.0.2.100")); // trusted: not admitted
    CHECK(!balancer.counted);
    const Admission moved = limits.move(balancer, ip("198.51.100.7"), t0);
    CHECK(moved.verdict == Verdict::ok);
    CHECK(limits.counts(moved.key).connections == 1);
    CHECK(limits.counts(moved.key).hellos == 1);
    CHECK(limits.admit(ip("198.51.100.7"), t0).verdict == Verdict::limit_source);
    // A counted connection moved elsewhere gives its slot back.
    const Admission again = limits.move(moved.key, ip("198.51.100.8"), t0);
    CHECK(again.verdict == Verdict::ok);
    CHECK(limits.counts(moved.key).connections == 0);
    const Admission refused = limits.move(limits.key_of(ip("192.0.2.100")), ip("198.51.100.8"), t0);
    CHECK(refused.verdict == Verdict::limit_source);
    CHECK(!refused.key.counted);
    limits.closed(refused.key, true); // the worker reports it closed: nothing changes
    CHECK(limits.counts(again.key).connections == 1);
}

TEST_CASE("settings change on SIGHUP: counts are kept, new limits apply")
{
    SourceLimits limits(Settings {}, key);
    for (int i = 0; i < 5; i++)
        limits.admit(ip("192.0.2.1"), t0);
    limits.configure(with({ "source-max=5" }));
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::limit_source);
    limits.configure(with({ "source-max=6" }));
    CHECK(limits.admit(ip("192.0.2.1"), t0).verdict == Verdict::ok);
}

TEST_CASE("a full table: entries holding connections are never forgotten")
{
    SourceLimits limits(with({ "source-max=1" }), key, 64);
    std::vector<Admission> held;
    for (unsigned n = 0; n < 64; n++) {
        held.push_back(limits.admit(numbered(n), t0));
        REQUIRE(held.back().verdict == Verdict::ok);
    }
    CHECK(limits.tracked_sources() == 64);
    // A new source cannot push out a counted one, and nobody's limit is lifted.
    CHECK(limits.admit(numbered(1000), t0).verdict == Verdict::limit_source);
    for (unsigned n = 0; n < 64; n++)
        CHECK(limits.admit(numbered(n), t0).verdict == Verdict::limit_source);
    CHECK(limits.tracked_sources() == 64);
    // One leaves: its entry carries no state and the new source gets it.
    limits.closed(held[5].key, true);
    CHECK(limits.admit(numbered(1000), t0).verdict == Verdict::ok);
    CHECK(limits.admit(numbered(1001), t0).verdict == Verdict::limit_source);
    for (unsigned n = 0; n < 64; n++) {
        if (n != 5)
            CHECK(limits.counts(held[n].key).connections == 1);
    }
}

TEST_CASE("a full table without per-source limits admits uncounted")
{
    SourceLimits limits(Settings {}, key, 8);
    for (unsigned n = 0; n < 8; n++)
        REQUIRE(limits.admit(numbered(n), t0).verdict == Verdict::ok);
    const Admission extra = limits.admit(numbered(99), t0);
    CHECK(extra.verdict == Verdict::ok);
    CHECK(!extra.key.counted);
    CHECK(limits.tracked_sources() == 8);
}

TEST_CASE("a full table forgets the longest idle source first, keeping rate state longest")
{
    SourceLimits limits(with({ "source-rate=1/1" }), key, 4);
    for (unsigned n = 0; n < 4; n++) {
        const Admission a = limits.admit(numbered(n), t0 + std::chrono::milliseconds(n));
        REQUIRE(a.verdict == Verdict::ok);
        limits.closed(a.key, true); // idle now, but its bucket is empty for a second
    }
    // Source 3 is idle the shortest: it is still limited after a new source took an entry.
    CHECK(limits.admit(numbered(100), t0 + 10ms).verdict == Verdict::ok);
    CHECK(limits.admit(numbered(3), t0 + 10ms).verdict == Verdict::limit_rate);
    CHECK(limits.tracked_sources() == 4);
    // Entries whose bucket has refilled are dropped: the table empties over time.
    for (int i = 0; i < 8; i++)
        limits.admit(numbered(200), t0 + 5s + std::chrono::seconds(i));
    CHECK(limits.tracked_sources() <= 2);
}

TEST_CASE("memory is bounded: a million sources through a small table")
{
    SourceLimits limits(with({ "source-max=10" }), key, 1024);
    for (unsigned n = 0; n < 1000000; n++) {
        const Admission a = limits.admit(numbered(n), t0 + std::chrono::microseconds(n));
        REQUIRE(a.verdict == Verdict::ok);
        limits.closed(a.key, true);
    }
    CHECK(limits.tracked_sources() <= limits.capacity());
    CHECK(limits.capacity() == 1024);
    CHECK(SourceLimits::bytes_per_source == 52);
}
