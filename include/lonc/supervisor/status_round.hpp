// One status generation at a time (USR1, lonctl status, a reload, the
// metrics timer): asked of every running child, done once all have
// answered or after `wait` seconds, whichever is first. Requests that come
// while one is out share it (what each wanted is added up).
#pragma once

#include "lonc/runtime/event_loop.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>

namespace lonc {

class StatusRound {
public:
    // What a generation is collected for.
    enum Want : unsigned { files = 1, metrics = 2 };
    // ask(gen): send the request to every running child; how many were asked.
    using Ask = std::function<std::size_t(std::uint64_t generation)>;
    // done(gen, want): write what was wanted from what came.
    using Done = std::function<void(std::uint64_t generation, unsigned want)>;

    StatusRound(EventLoop& loop, double wait, Ask ask, Done done);

    // Starts a generation, or joins the one out.
    void request(unsigned want);
    // A child answered; all: every child asked has answered this generation.
    void answered(bool all);
    [[nodiscard]] bool collecting() const noexcept { return collecting_; }
    [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }

private:
    void finish();

    double wait_;
    Ask ask_;
    Done done_;
    Timer timer_;
    std::uint64_t generation_ = 0;
    bool collecting_ = false;
    unsigned want_ = 0;
};

} // namespace lonc
