// The one event loop of a lonc process: epoll readiness plus timers.
//
// Single-threaded by contract: every Watcher and Timer belongs to the loop
// it was registered with and is touched only from that loop's callbacks.
// Level-triggered; owners ask for EPOLLOUT only while output is queued. The
// epoll_wait timeout comes from the nearest armed timer, so an idle process
// sleeps until something happens.
#pragma once

#include "lonc/core/fd.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sys/epoll.h>
#include <vector>

namespace lonc {

class Timer;

class EventLoop {
public:
    using Clock = std::chrono::steady_clock;
    using TimePoint = Clock::time_point;

    // Something that owns a descriptor registered with the loop.
    class Watcher {
    public:
        virtual void on_events(std::uint32_t events) = 0;

    protected:
        Watcher() = default;
        ~Watcher() = default;
        Watcher(const Watcher&) = default;
        Watcher& operator=(const Watcher&) = default;
    };

    // The clock the loop reads now() and runs its timers by.
    using NowFn = TimePoint (*)();
    // clock: a fake one for tests (timers fire when it has moved past
    // their deadline; epoll still waits in real time); default steady_clock.
    explicit EventLoop(NowFn clock = nullptr);
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    ~EventLoop() = default;

    // Register, change or drop fd. Failures of add/modify throw
    // std::system_error (they mean a bug or exhausted kernel memory).
    void add(int fd, std::uint32_t events, Watcher& w);
    void modify(int fd, std::uint32_t events, Watcher& w);
    // Safe while dispatching: events of w still pending in this round are
    // dropped, so w may be destroyed right after.
    void remove(int fd, Watcher& w) noexcept;
    // remove() for a descriptor the caller closes right away and that no
    // other descriptor or process shares: closing it leaves the epoll set by
    // itself, so this skips the epoll_ctl (one syscall per client saved).
    void forget(Watcher& w) noexcept;

    // Something that wants to run once the events and timers of this round
    // are handled, e.g. to write with one syscall what several callbacks
    // queued. It must cancel() before it dies.
    class Deferred {
    public:
        virtual void run_deferred() = 0;

    protected:
        Deferred() = default;
        ~Deferred() = default;
        Deferred(const Deferred&) = default;
        Deferred& operator=(const Deferred&) = default;
    };
    // Runs d at the end of this round (or the next one, if called outside a
    // round). The caller keeps a flag so that d is deferred at most once.
    void defer(Deferred& d) { deferred_.push_back(&d); }
    void cancel(Deferred& d) noexcept;

    // Runs until stop(); returns the code given to stop().
    int run();
    // One round: wait at most max_wait (or until the next timer), dispatch.
    void run_once(std::chrono::milliseconds max_wait);
    void stop(int code = 0) noexcept {
        stopped_ = true;
        exit_code_ = code;
    }
    [[nodiscard]] bool stopped() const noexcept { return stopped_; }

    // The time at the start of this round (refreshed after each wait).
    [[nodiscard]] TimePoint now() const noexcept { return now_; }
    void refresh_now() noexcept { now_ = now_fn_(); }

    // Rounds that returned from epoll_wait (for benchmarks and metrics).
    [[nodiscard]] std::uint64_t wakeups() const noexcept { return wakeups_; }

private:
    friend class Timer;
    void run_timers();
    void run_deferred();
    [[nodiscard]] int wait_timeout_ms(std::chrono::milliseconds max_wait) const;

    NowFn now_fn_;
    UniqueFd epfd_;
    std::vector<epoll_event> events_;
    int pending_ = 0; // events of this round not yet dispatched
    int next_ = 0;
    std::vector<Timer*> timers_;
    std::vector<Deferred*> deferred_;
    std::vector<Deferred*> running_; // the batch run_deferred() is running
    TimePoint now_;
    std::uint64_t wakeups_ = 0;
    bool stopped_ = false;
    int exit_code_ = 0;
};

// A one-shot timer owned by some object of the loop. Arming an armed timer
// moves it. The callback runs from the loop, never re-entrantly.
class Timer {
public:
    Timer(EventLoop& loop, std::function<void()> fn);
    ~Timer();
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    void arm_at(EventLoop::TimePoint when) noexcept {
        deadline_ = when;
        armed_ = true;
    }
    void arm_in(EventLoop::Clock::duration d) noexcept { arm_at(loop_.now() + d); }
    void cancel() noexcept { armed_ = false; }
    [[nodiscard]] bool armed() const noexcept { return armed_; }
    [[nodiscard]] EventLoop::TimePoint deadline() const noexcept { return deadline_; }

private:
    friend class EventLoop;
    EventLoop& loop_;
    std::function<void()> fn_;
    EventLoop::TimePoint deadline_{};
    bool armed_ = false;
};

// Seconds (fractions allowed) as a steady_clock duration. Beyond about 30
// years either way (an option set to 1e300, say) it is 30 years: the
// conversion of a larger value would overflow. NaN is 0.
[[nodiscard]] inline EventLoop::Clock::duration seconds(double s) {
    constexpr double most = 1e9;
    const double clamped = std::isnan(s) ? 0.0 : std::clamp(s, -most, most);
    return std::chrono::duration_cast<EventLoop::Clock::duration>(
        std::chrono::duration<double>(clamped));
}

} // namespace lonc
