#include "lonc/runtime/event_loop.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace lonc {

namespace {
EventLoop::TimePoint steady_now() {
    return EventLoop::Clock::now();
}
} // namespace

EventLoop::EventLoop(NowFn clock)
    : now_fn_(clock != nullptr ? clock : &steady_now), epfd_(::epoll_create1(EPOLL_CLOEXEC)),
      events_(256), now_(now_fn_()) {
    if (!epfd_) {
        throw std::system_error(errno, std::generic_category(), "epoll_create1");
    }
}

void EventLoop::add(int fd, std::uint32_t events, Watcher& w) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &w;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        throw std::system_error(errno, std::generic_category(), "epoll_ctl(ADD)");
    }
}

void EventLoop::modify(int fd, std::uint32_t events, Watcher& w) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &w;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
        throw std::system_error(errno, std::generic_category(), "epoll_ctl(MOD)");
    }
}

void EventLoop::remove(int fd, Watcher& w) noexcept {
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    forget(w);
}

void EventLoop::forget(Watcher& w) noexcept {
    for (int i = next_; i < pending_; ++i) {
        if (events_[static_cast<std::size_t>(i)].data.ptr == &w) {
            events_[static_cast<std::size_t>(i)].data.ptr = nullptr;
        }
    }
}

void EventLoop::cancel(Deferred& d) noexcept {
    std::erase(deferred_, &d);
    std::replace(running_.begin(), running_.end(), &d, static_cast<Deferred*>(nullptr));
}

void EventLoop::run_deferred() {
    // What runs may defer again (it then runs in the next batch, still in
    // this round); running_ lets cancel() reach the batch being run.
    while (!deferred_.empty() && !stopped_) {
        running_.swap(deferred_);
        for (std::size_t i = 0; i < running_.size(); ++i) {
            if (auto* d = running_[i]) {
                running_[i] = nullptr;
                d->run_deferred();
            }
        }
        running_.clear();
    }
}

int EventLoop::wait_timeout_ms(std::chrono::milliseconds max_wait) const {
    if (!deferred_.empty()) {
        return 0; // deferred from outside a round: do not sleep on it
    }
    auto wait = max_wait;
    const auto now = now_fn_();
    for (const auto* t : timers_) {
        if (t->armed_) {
            const auto left = t->deadline_ - now;
            // Round up: waking a little late is fine, waking early spins.
            const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left);
            wait = std::min(wait, std::max(ms, std::chrono::milliseconds(0)));
        }
    }
    return static_cast<int>(wait.count());
}

void EventLoop::run_timers() {
    for (;;) {
        Timer* due = nullptr;
        for (auto* t : timers_) {
            if (t->armed_ && t->deadline_ <= now_ &&
                (due == nullptr || t->deadline_ < due->deadline_)) {
                due = t;
            }
        }
        if (due == nullptr || stopped_) {
            return;
        }
        due->armed_ = false;
        due->fn_();
    }
}

namespace {

// UBSan's vptr check (sanitizer builds only) reads the object through a
// pipe(2) of its own. In a process that has run out of descriptors, which is
// exactly what lonc must survive, that pipe fails and UBSan reports a live
// watcher as having an invalid vptr. Every watcher is registered by its
// owner and removed in its destructor, so the check adds nothing here.
__attribute__((no_sanitize("vptr"))) void deliver(EventLoop::Watcher& w, std::uint32_t events) {
    w.on_events(events);
}

} // namespace

void EventLoop::run_once(std::chrono::milliseconds max_wait) {
    const int timeout = wait_timeout_ms(max_wait);
    const int n =
        ::epoll_wait(epfd_.get(), events_.data(), static_cast<int>(events_.size()), timeout);
    now_ = now_fn_();
    if (n < 0) {
        if (errno == EINTR) {
            return;
        }
        throw std::system_error(errno, std::generic_category(), "epoll_wait");
    }
    ++wakeups_;
    pending_ = n;
    for (next_ = 0; next_ < pending_ && !stopped_;) {
        const auto& ev = events_[static_cast<std::size_t>(next_++)];
        if (auto* w = static_cast<Watcher*>(ev.data.ptr)) {
            deliver(*w, ev.events);
        }
    }
    pending_ = next_ = 0;
    run_timers();
    run_deferred();
}

int EventLoop::run() {
    constexpr auto forever = std::chrono::milliseconds(24 * 3600 * 1000);
    while (!stopped_) {
        run_once(forever);
    }
    return exit_code_;
}

Timer::Timer(EventLoop& loop, std::function<void()> fn) : loop_(loop), fn_(std::move(fn)) {
    loop_.timers_.push_back(this);
}

Timer::~Timer() {
    auto& ts = loop_.timers_;
    ts.erase(std::remove(ts.begin(), ts.end(), this), ts.end());
}

} // namespace lonc
