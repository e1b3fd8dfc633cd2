#include "lonc/core/clock_text.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace lonc {
namespace {

class ClockText : public ::testing::Test {
protected:
    void SetUp() override {
        const char* tz = std::getenv("TZ");
        saved_ = tz ? tz : "";
        had_ = tz != nullptr;
        setenv("TZ", "UTC", 1);
        tzset();
    }
    void TearDown() override {
        if (had_) {
            setenv("TZ", saved_.c_str(), 1);
        } else {
            unsetenv("TZ");
        }
        tzset();
    }

private:
    std::string saved_;
    bool had_ = false;
};

TEST_F(ClockText, SingleDigitDayIsSpacePadded) {
    EXPECT_EQ(perl_localtime(1000000000), "Sun Sep  9 01:46:40 2001");
}

TEST_F(ClockText, TwoDigitDay) {
    EXPECT_EQ(perl_localtime(1795464738), "Mon Nov 23 20:12:18 2026");
}

TEST_F(ClockText, Epoch) {
    EXPECT_EQ(perl_localtime(0), "Thu Jan  1 00:00:00 1970");
}

TEST_F(ClockText, FollowsTimeZone) {
    setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1); // a POSIX rule: no tzdata needed
    tzset();
    EXPECT_EQ(perl_localtime(1000000000), "Sat Sep  8 21:46:40 2001");
}

} // namespace
} // namespace lonc
