// The restart rule on made-up times: no loop, no child.
#include "lonc/supervisor/restart_policy.hpp"

#include <gtest/gtest.h>

namespace lonc {
namespace {

using namespace std::chrono_literals;

const EventLoop::TimePoint t0{};

TEST(RestartPolicy, AtOnceThenDoublingUpToAMinute) {
    RestartPolicy p;
    const std::vector<double> expected = {0, 1, 2, 4, 8, 16, 32, 60, 60};
    auto now = t0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        now += 1s;
        EXPECT_EQ(p.died(now), i + 1);
        EXPECT_EQ(p.next_start(now, 100), now + seconds(expected[i])) << "death " << i + 1;
    }
}

TEST(RestartPolicy, SkippedAfterMaxAttemptsUntilTenMinutesAfterTheLast) {
    RestartPolicy p;
    (void)p.died(t0);
    (void)p.died(t0 + 5s);
    EXPECT_FALSE(p.skipped(3));
    (void)p.died(t0 + 9s);
    EXPECT_TRUE(p.skipped(3));
    EXPECT_EQ(p.next_start(t0 + 9s, 3), t0 + 9s + RestartPolicy::window);
    p.forget();
    EXPECT_FALSE(p.skipped(3));
    EXPECT_EQ(p.count(), 0U);
}

TEST(RestartPolicy, DeathsOlderThanTheWindowNoLongerCount) {
    RestartPolicy p;
    (void)p.died(t0);
    (void)p.died(t0 + 1min);
    EXPECT_EQ(p.died(t0 + 10min + 30s), 2U); // the first is out of the window
    EXPECT_EQ(p.died(t0 + 30min), 1U);
}

} // namespace
} // namespace lonc
