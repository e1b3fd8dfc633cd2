#include "lonc/runtime/signals.hpp"

#include <cerrno>
#include <csignal>
#include <system_error>

namespace lonc {

void block_handled_signals() noexcept {
    sigset_t set;
    sigemptyset(&set);
    for (const int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) {
        sigaddset(&set, s);
    }
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
}

void reset_signals() noexcept {
    for (int s = 1; s < NSIG; ++s) {
        if (s != SIGKILL && s != SIGSTOP) {
            ::signal(s, SIG_DFL);
        }
    }
    ::signal(SIGPIPE, SIG_IGN);
}

SignalReader::SignalReader(EventLoop& loop, std::initializer_list<int> signals, Handler handler)
    : loop_(loop), handler_(std::move(handler)) {
    sigset_t set;
    sigemptyset(&set);
    for (const int s : signals) {
        sigaddset(&set, s);
    }
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_) {
        throw std::system_error(errno, std::generic_category(), "signalfd");
    }
    loop_.add(fd_.get(), EPOLLIN, *this);
}

SignalReader::~SignalReader() {
    loop_.remove(fd_.get(), *this);
}

void SignalReader::on_events(std::uint32_t /*events*/) {
    signalfd_siginfo info{};
    while (::read(fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        handler_(info);
    }
}

} // namespace lonc
