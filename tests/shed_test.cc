// shed_test.cc: whom the daemon sheds under pressure, with crafted tables.
#include "catch.h"
#include "shed.h"

#include <algorithm>
#include <map>

using namespace sniproxy;
using namespace std::chrono_literals;
using Clock = SourceLimits::Clock;

namespace {
SourceKey source(unsigned n)
{
    SourceKey k;
    k.address.family = AF_INET;
    k.address.bytes = { 10, 0, static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n) };
    k.prefix = 32;
    return k;
}
const Clock::time_point t0 = Clock::time_point(100s);
} // namespace

TEST_CASE("nothing is shed below 90 % of the capacity in the hello phase")
{
    std::vector<HelloPhase> hellos(89, { source(1), t0 });
    CHECK(!under_pressure(89, 100));
    CHECK(choose_shed(hellos, 100).empty());
    hellos.push_back({ source(1), t0 });
    CHECK(under_pressure(90, 100));
    CHECK(choose_shed(hellos, 100).size() == 10); // down to 80 %
    CHECK(choose_shed({}, 100).empty()); // all established: nothing to shed
    CHECK(choose_shed(hellos, 0).empty());
}

TEST_CASE("one noisy source with 1,000 silent connections and ten real clients")
{
    std::vector<HelloPhase> hellos;
    for (int i = 0; i < 1000; i++)
        hellos.push_back({ source(666), t0 + std::chrono::milliseconds(i) });
    for (unsigned s = 0; s < 10; s++) // the real clients came first: older than most
        hellos.push_back({ source(s), t0 + std::chrono::milliseconds(5) });
    const auto shed = choose_shed(hellos, 1100);
    REQUIRE(shed.size() == 1010 - 880);
    for (std::size_t k = 0; k < shed.size(); k++) {
        CHECK(shed[k] == k); // the noisy source's, oldest first
    }
}

TEST_CASE("sources are levelled down from the one holding the most")
{
    std::vector<HelloPhase> hellos;
    for (int i = 0; i < 6; i++)
        hellos.push_back({ source(1), t0 + std::chrono::seconds(i) });
    for (int i = 0; i < 4; i++)
        hellos.push_back({ source(2), t0 + std::chrono::seconds(10 + i) });
    hellos.push_back({ source(3), t0 - 100s }); // the oldest of all, but alone
    hellos.push_back({ source(4), t0 - 100s });
    hellos.push_back({ source(5), t0 - 100s });
    // 13 in the hello phase of 10: down to 8 means 5 shed.
    const auto shed = choose_shed(hellos, 10);
    // Source 1 down to 4; source 2 holds 4 too, source 1's oldest is older; source 2 then
    // holds the most; then source 1 again. Sources 3 to 5 are never reached.
    CHECK(shed == std::vector<std::size_t> { 0, 1, 2, 6, 3 });
}

TEST_CASE("established connections do not count towards the pressure")
{
    // 3 in the hello phase of a capacity of 4: 75 %, whatever else is open.
    std::vector<HelloPhase> hellos(3, { source(1), t0 });
    CHECK(choose_shed(hellos, 4).empty());
    hellos.push_back({ source(2), t0 });
    CHECK(choose_shed(hellos, 4).size() == 1); // 4 of 4: down to 3
}
