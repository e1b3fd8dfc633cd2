// systemd's notify protocol (sd_notify from libsystemd). Every call is a
// no-op when NOTIFY_SOCKET is not set, i.e. not started by systemd with
// Type=notify.
#pragma once

#include "lonc/runtime/event_loop.hpp"

#include <memory>
#include <string>

namespace lonc {

class Notifier {
public:
    Notifier() = default;
    // READY=1 (start done, or a reload decided).
    void ready();
    void reloading();
    void stopping();
    // STATUS=<text>, sent only when it changed.
    void status(const std::string& text);
    // Sends WATCHDOG=1 at half the interval systemd asks for (WatchdogSec).
    void start_watchdog(EventLoop& loop);

private:
    std::string last_status_;
    std::unique_ptr<Timer> watchdog_;
};

} // namespace lonc
