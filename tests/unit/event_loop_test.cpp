#include "lonc/runtime/event_loop.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace lonc {
namespace {

// A fake clock the tests move by hand.
EventLoop::TimePoint fake_now{};
EventLoop::TimePoint fake_clock() {
    return fake_now;
}

struct Pair {
    int fd[2]{-1, -1};
    Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0); }
    ~Pair() {
        ::close(fd[0]);
        ::close(fd[1]);
    }
    Pair(const Pair&) = delete;
    Pair& operator=(const Pair&) = delete;
};

struct Recorder final : EventLoop::Watcher {
    std::vector<std::uint32_t> seen;
    std::function<void()> then;
    void on_events(std::uint32_t events) override {
        seen.push_back(events);
        if (then) {
            then();
        }
    }
};

TEST(EventLoop, TimersFireInDeadlineOrderOnlyOnceTheClockHasPassedThem) {
    fake_now = EventLoop::TimePoint{} + std::chrono::hours(1);
    EventLoop loop(fake_clock);
    loop.refresh_now();
    std::string order;
    Timer late(loop, [&] { order += 'b'; });
    Timer early(loop, [&] { order += 'a'; });
    late.arm_in(std::chrono::seconds(2));
    early.arm_in(std::chrono::seconds(1));
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(order, "");
    fake_now += std::chrono::seconds(5);
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(order, "ab");
    EXPECT_FALSE(early.armed());
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(order, "ab") << "a one-shot timer fires once";
}

TEST(EventLoop, ACancelledOrMovedTimerDoesNotFireAtItsOldDeadline) {
    fake_now = EventLoop::TimePoint{} + std::chrono::hours(1);
    EventLoop loop(fake_clock);
    loop.refresh_now();
    int fired = 0;
    Timer cancelled(loop, [&] { fired += 1; });
    Timer moved(loop, [&] { fired += 10; });
    cancelled.arm_in(std::chrono::seconds(1));
    moved.arm_in(std::chrono::seconds(1));
    cancelled.cancel();
    moved.arm_in(std::chrono::seconds(10));
    fake_now += std::chrono::seconds(2);
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(fired, 0);
    fake_now += std::chrono::seconds(10);
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(fired, 10);
}

TEST(EventLoop, ReadinessReachesItsWatcherAndRemovalStopsIt) {
    EventLoop loop;
    Pair p;
    Recorder r;
    loop.add(p.fd[0], EPOLLIN, r);
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_TRUE(r.seen.empty());
    ASSERT_EQ(::write(p.fd[1], "x", 1), 1);
    loop.run_once(std::chrono::milliseconds(1000));
    ASSERT_EQ(r.seen.size(), 1U);
    EXPECT_NE(r.seen[0] & EPOLLIN, 0U);
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(r.seen.size(), 2U) << "level-triggered: unread data reports again";
    loop.remove(p.fd[0], r);
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(r.seen.size(), 2U);
}

TEST(EventLoop, AWatcherRemovedDuringARoundGetsNoMoreEventsOfThatRound) {
    EventLoop loop;
    Pair a;
    Pair b;
    Recorder first;
    Recorder second;
    // Whichever runs first removes the other: the other's pending event of
    // this round must be dropped (it may be destroyed already).
    first.then = [&] { loop.remove(b.fd[0], second); };
    second.then = [&] { loop.remove(a.fd[0], first); };
    loop.add(a.fd[0], EPOLLIN, first);
    loop.add(b.fd[0], EPOLLIN, second);
    ASSERT_EQ(::write(a.fd[1], "x", 1), 1);
    ASSERT_EQ(::write(b.fd[1], "x", 1), 1);
    loop.run_once(std::chrono::milliseconds(1000));
    EXPECT_EQ(first.seen.size() + second.seen.size(), 1U);
}

struct Batch final : EventLoop::Deferred {
    int runs = 0;
    void run_deferred() override { ++runs; }
};

TEST(EventLoop, DeferredWorkRunsOnceAtTheEndOfTheRoundUnlessCancelled) {
    EventLoop loop;
    Pair p;
    Batch batch;
    Batch cancelled;
    Recorder r;
    r.then = [&] {
        EXPECT_EQ(batch.runs, 0) << "not before the round's events are handled";
        loop.defer(batch);
        loop.defer(cancelled);
        loop.cancel(cancelled);
    };
    loop.add(p.fd[0], EPOLLIN, r);
    ASSERT_EQ(::write(p.fd[1], "x", 1), 1);
    loop.run_once(std::chrono::milliseconds(1000));
    EXPECT_EQ(batch.runs, 1);
    EXPECT_EQ(cancelled.runs, 0);
    loop.remove(p.fd[0], r);
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(batch.runs, 1);
}

TEST(EventLoop, RunReturnsTheCodeGivenToStopAndCountsWakeups) {
    EventLoop loop;
    Timer t(loop, [&] { loop.stop(7); });
    t.arm_in(std::chrono::milliseconds(5));
    EXPECT_EQ(loop.run(), 7);
    EXPECT_TRUE(loop.stopped());
    EXPECT_GE(loop.wakeups(), 0U);
}

TEST(EventLoop, AnIdleLoopSleepsUntilItsNextTimerNotLonger) {
    EventLoop loop;
    bool fired = false;
    Timer t(loop, [&] { fired = true; });
    t.arm_in(std::chrono::milliseconds(30));
    const auto t0 = std::chrono::steady_clock::now();
    while (!fired) {
        loop.run_once(std::chrono::seconds(10));
    }
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, std::chrono::milliseconds(30));
    EXPECT_LT(waited, std::chrono::seconds(5)) << "the timer, not max_wait, bounds the sleep";
}

TEST(EventLoop, AbsurdSecondsAreThirtyYearsNotAnOverflow) {
    EXPECT_EQ(seconds(1e300), seconds(1e9));
    EXPECT_EQ(seconds(-1e300), seconds(-1e9));
    EXPECT_EQ(seconds(std::nan("")), EventLoop::Clock::duration::zero());
    EXPECT_EQ(seconds(1.5), std::chrono::milliseconds(1500));
    EventLoop loop;
    Timer t(loop, [] {});
    t.arm_in(seconds(1e300)); // --request-timeout 1e300, say
    EXPECT_GT(t.deadline(), loop.now() + std::chrono::hours(24 * 365 * 30));
}

} // namespace
} // namespace lonc
