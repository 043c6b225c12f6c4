// accept_gate_test.cc: the parent's decision on accept: who is refused with which result and
// log line, that the lines are rate-limited, and that balancers are not counted.
#include "accept_gate.h"
#include "catch.h"
#include "fake_workers.h"

using namespace sniproxy;
using namespace sniproxy::test;

namespace {
Settings parsed(const std::vector<std::string>& items)
{
    Settings s;
    std::string err;
    REQUIRE(parse_settings("", "", items, &s, &err));
    return s;
}
constexpr std::int64_t t0 = 5'000'000'000;
} // namespace

TEST_CASE("denied and over-limit sources are refused on accept with a worker-like line")
{
    AcceptGate gate(parsed({ "deny=198.51.100.0/24", "source-max=2" }), { 1, 2 });
    LogCapture log;
    SourceKey key;
    CHECK_FALSE(gate.admit(ipv4("198.51.100.7", 5555), t0, &key));
    CHECK(log.has(
        LogLevel::info, "client=198.51.100.7:5555 sni=- route=- result=denied up=0 down=0 ms=0"));
    CHECK(gate.admit(ipv4("192.0.2.1"), t0, &key));
    CHECK(key.counted);
    CHECK(gate.admit(ipv4("192.0.2.1"), t0, &key));
    CHECK_FALSE(gate.admit(ipv4("192.0.2.1"), t0, &key)); // the third
    CHECK(log.has(LogLevel::info, "result=limit-source"));
    CHECK(gate.admit(ipv4("192.0.2.2"), t0, &key)); // another source is unaffected
}

TEST_CASE("a balancer's connections are neither checked nor counted under its address")
{
    AcceptGate gate(
        parsed({ "proxy-from=10.0.0.1", "allow=192.0.2.0/24", "source-max=1" }), { 1, 2 });
    SourceKey key;
    for (int i = 0; i < 5; i++) {
        CHECK(gate.admit(ipv4("10.0.0.1"), t0, &key));
        CHECK_FALSE(key.counted);
    }
    CHECK(gate.limits().counts(key).connections == 0);
    CHECK_FALSE(gate.admit(ipv4("10.0.0.2"), t0, &key)); // not in allow, not a balancer
}

TEST_CASE("refusal lines are rate-limited and the suppressed are counted")
{
    AcceptGate gate(parsed({ "deny=0.0.0.0/0" }), { 1, 2 });
    LogCapture log;
    SourceKey key;
    for (int i = 0; i < 150; i++)
        CHECK_FALSE(gate.admit(ipv4("192.0.2.1"), t0 + i, &key));
    CHECK(log.lines.size() == RefusalLog::default_per_second);
    gate.tick(t0 + 1'500'000'000);
    CHECK(log.has(LogLevel::notice, "50 refusal log lines suppressed"));
}

TEST_CASE("new settings apply to new connections, counts are kept")
{
    AcceptGate gate(parsed({ "source-max=5" }), { 1, 2 });
    SourceKey key;
    for (int i = 0; i < 3; i++)
        REQUIRE(gate.admit(ipv4("192.0.2.1"), t0, &key));
    gate.configure(parsed({ "source-max=3" }));
    CHECK_FALSE(gate.admit(ipv4("192.0.2.1"), t0, &key)); // 3 held already
    gate.configure(parsed({ "deny=192.0.2.0/24" }));
    CHECK_FALSE(gate.admit(ipv4("192.0.2.9"), t0, &key));
}
