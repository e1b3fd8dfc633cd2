// A status generation's life on a fake clock: no child, no files.
#include "lonc/supervisor/status_round.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <utility>
#include <vector>

namespace lonc {
namespace {

EventLoop::TimePoint fake_time = EventLoop::Clock::now();
EventLoop::TimePoint fake_now() {
    return fake_time;
}

class StatusRoundTest : public ::testing::Test {
protected:
    void advance(double s) {
        fake_time += seconds(s);
        loop_.run_once(std::chrono::milliseconds(0));
    }

    EventLoop loop_{&fake_now};
    std::size_t children_ = 3;
    std::vector<std::uint64_t> asked_;
    std::vector<std::pair<std::uint64_t, unsigned>> done_;
    StatusRound round_{loop_, 1.0,
                       [this](std::uint64_t gen) {
                           asked_.push_back(gen);
                           return children_;
                       },
                       [this](std::uint64_t gen, unsigned want) { done_.emplace_back(gen, want); }};
};

TEST_F(StatusRoundTest, DoneWhenAllHaveAnsweredNotBefore) {
    round_.request(StatusRound::files);
    EXPECT_EQ(asked_, (std::vector<std::uint64_t>{1}));
    EXPECT_TRUE(round_.collecting());
    round_.answered(false);
    EXPECT_TRUE(done_.empty());
    round_.answered(true);
    ASSERT_EQ(done_.size(), 1U);
    EXPECT_EQ(done_[0], (std::pair<std::uint64_t, unsigned>{1, StatusRound::files}));
    EXPECT_FALSE(round_.collecting());
    round_.answered(true); // a late answer: nothing more
    EXPECT_EQ(done_.size(), 1U);
}

TEST_F(StatusRoundTest, AChildThatDoesNotAnswerHoldsItUpOneSecondAtMost) {
    round_.request(StatusRound::metrics);
    advance(0.9);
    EXPECT_TRUE(done_.empty());
    advance(0.2);
    ASSERT_EQ(done_.size(), 1U);
    EXPECT_EQ(done_[0].second, StatusRound::metrics);
}

TEST_F(StatusRoundTest, OverlappingRequestsShareOneGenerationAndAddUpWhatTheyWant) {
    round_.request(StatusRound::metrics);
    round_.request(StatusRound::files);
    EXPECT_EQ(asked_.size(), 1U);
    round_.answered(true);
    ASSERT_EQ(done_.size(), 1U);
    EXPECT_EQ(done_[0].second, StatusRound::files | StatusRound::metrics);
    round_.request(StatusRound::files); // the next one is a new generation
    EXPECT_EQ(asked_, (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(StatusRoundTest, NoChildToAskIsDoneAtOnce) {
    children_ = 0;
    round_.request(StatusRound::files);
    ASSERT_EQ(done_.size(), 1U);
    EXPECT_FALSE(round_.collecting());
}

} // namespace
} // namespace lonc
