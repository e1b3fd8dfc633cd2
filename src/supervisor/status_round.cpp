#include "lonc/supervisor/status_round.hpp"

#include <utility>

namespace lonc {

StatusRound::StatusRound(EventLoop& loop, double wait, Ask ask, Done done)
    : wait_(wait), ask_(std::move(ask)), done_(std::move(done)),
      timer_(loop, [this] { finish(); }) {}

void StatusRound::request(unsigned want) {
    want_ |= want;
    if (collecting_) {
        return; // overlapping requests share one generation
    }
    collecting_ = true;
    ++generation_;
    if (ask_(generation_) == 0) {
        finish();
        return;
    }
    timer_.arm_in(seconds(wait_));
}

void StatusRound::answered(bool all) {
    if (collecting_ && all) {
        finish();
    }
}

void StatusRound::finish() {
    if (!collecting_) {
        return;
    }
    collecting_ = false;
    timer_.cancel();
    done_(generation_, std::exchange(want_, 0U));
}

} // namespace lonc
