// Signals as ordinary loop events: the signals lonc handles are blocked and
// read from a signalfd, so no code runs in a signal handler.
#pragma once

#include "lonc/core/fd.hpp"
#include "lonc/runtime/event_loop.hpp"

#include <functional>
#include <initializer_list>
#include <sys/signalfd.h>

namespace lonc {

// Blocks the signals lonc handles (INT TERM HUP USR1 USR2 CHLD) in this
// process and ignores SIGPIPE. Call first thing in main, before any fork.
void block_handled_signals() noexcept;

// For a freshly forked child before it sets up its own: default
// dispositions. The mask is kept: a signal that arrives before the child's
// SignalReader exists waits, blocked, and is read then (it must not kill
// a child that has not finished starting).
void reset_signals() noexcept;

class SignalReader final : public EventLoop::Watcher {
public:
    using Handler = std::function<void(const signalfd_siginfo&)>;
    SignalReader(EventLoop& loop, std::initializer_list<int> signals, Handler handler);
    ~SignalReader();
    SignalReader(const SignalReader&) = delete;
    SignalReader& operator=(const SignalReader&) = delete;

    void on_events(std::uint32_t events) override;

private:
    EventLoop& loop_;
    UniqueFd fd_;
    Handler handler_;
};

} // namespace lonc
