#include "lonc/supervisor/restart_policy.hpp"

#include <algorithm>

namespace lonc {

std::size_t RestartPolicy::died(EventLoop::TimePoint now) {
    deaths_.push_back(now);
    while (deaths_.front() + window <= now) {
        deaths_.pop_front();
    }
    return deaths_.size();
}

EventLoop::TimePoint RestartPolicy::next_start(EventLoop::TimePoint now,
                                               unsigned max_attempts) const {
    if (skipped(max_attempts)) {
        return deaths_.back() + window;
    }
    // At once, then 1, 2, 4 ... 60 s.
    const auto n = deaths_.size();
    const double delay =
        n <= 1 ? 0.0 : std::min(60.0, static_cast<double>(1U << std::min<std::size_t>(n - 2, 6)));
    return now + seconds(delay);
}

} // namespace lonc
