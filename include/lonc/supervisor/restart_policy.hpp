// One peer's restart rule (lonc(8), SIGNALS, CHLD): deaths of its child,
// and failed starts, count for ten minutes; the first restart is at once,
// then after 1, 2, 4 ... 60 s; after --max-attempts counted deaths the
// peer is skipped until ten minutes after the last one. Pure: the caller
// gives the time (the loop's clock, fake in tests).
#pragma once

#include "lonc/runtime/event_loop.hpp"

#include <chrono>
#include <cstddef>
#include <deque>

namespace lonc {

class RestartPolicy {
public:
    static constexpr auto window = std::chrono::minutes(10);

    // A death (or a start that failed) at now; returns how many count.
    std::size_t died(EventLoop::TimePoint now);
    // Every death forgotten (USR1, lonctl reconnect, a new address).
    void forget() noexcept { deaths_.clear(); }
    [[nodiscard]] std::size_t count() const noexcept { return deaths_.size(); }
    // Too many deaths: skipped until next_start().
    [[nodiscard]] bool skipped(unsigned max_attempts) const noexcept {
        return deaths_.size() >= max_attempts;
    }
    // When the next start is due (after died(now)).
    [[nodiscard]] EventLoop::TimePoint next_start(EventLoop::TimePoint now,
                                                  unsigned max_attempts) const;

private:
    std::deque<EventLoop::TimePoint> deaths_; // oldest first, within window
};

} // namespace lonc
