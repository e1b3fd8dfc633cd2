// The test harness's process spawner: what tests rely on it for.
#include <gtest/gtest.h>

#include <cstdlib>

#include "process.hpp"

namespace lonc::test {
namespace {

TEST(Spawn, ExtraEnvironmentReplacesInheritedVariables) {
    // Cluster passes ASAN_OPTIONS=<inherited>:log_path=... to lonc; the
    // inherited ASAN_OPTIONS (set by the asan ctest preset) must not win.
    ::setenv("LONC_SPAWN_TEST", "inherited", 1);
    SpawnOptions so;
    so.env = {"LONC_SPAWN_TEST=given"};
    so.capture_stdout = true;
    // getenv() in the child (printenv uses it) sees the given value...
    auto p = Process::spawn({"/usr/bin/printenv", "LONC_SPAWN_TEST"}, so);
    EXPECT_EQ(p.read_line(5s), "given");
    ASSERT_TRUE(p.wait(5s).has_value());
    // ... and the environment holds the name once.
    auto all = Process::spawn({"/usr/bin/env"}, so);
    int seen = 0;
    while (const auto line = all.read_line(5s)) {
        seen += line->rfind("LONC_SPAWN_TEST=", 0) == 0 ? 1 : 0;
    }
    EXPECT_EQ(seen, 1);
    ASSERT_TRUE(all.wait(5s).has_value());
    ::unsetenv("LONC_SPAWN_TEST");
}

} // namespace
} // namespace lonc::test
