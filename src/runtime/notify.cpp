#include "lonc/runtime/notify.hpp"

#include <systemd/sd-daemon.h>

#include <ctime>
#include <string>

namespace lonc {

void Notifier::ready() {
    ::sd_notify(0, "READY=1");
}

void Notifier::reloading() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    const auto msg = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
    ::sd_notify(0, msg.c_str());
}

void Notifier::stopping() {
    ::sd_notify(0, "STOPPING=1");
}

void Notifier::status(const std::string& text) {
    if (text == last_status_) {
        return;
    }
    last_status_ = text;
    ::sd_notify(0, ("STATUS=" + text).c_str());
}

void Notifier::start_watchdog(EventLoop& loop) {
    std::uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
        return;
    }
    const auto every = std::chrono::microseconds(usec / 2);
    watchdog_ = std::make_unique<Timer>(loop, [this, every] {
        ::sd_notify(0, "WATCHDOG=1");
        watchdog_->arm_in(every);
    });
    ::sd_notify(0, "WATCHDOG=1");
    watchdog_->arm_in(every);
}

} // namespace lonc
