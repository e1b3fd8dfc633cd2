#include "lonc/runtime/notify.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "temp_dir.hpp"

namespace lonc {
namespace {

// A datagram socket standing in for systemd's notify socket.
class FakeSystemd {
public:
    FakeSystemd() : dir_("lonc-notify-test") {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        const auto path = (dir_ / "notify").string();
        path.copy(a.sun_path, sizeof a.sun_path - 1);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
        ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    }
    ~FakeSystemd() {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
        ::close(fd_);
    }
    FakeSystemd(const FakeSystemd&) = delete;
    FakeSystemd& operator=(const FakeSystemd&) = delete;

    std::optional<std::string> next(int timeout_ms = 1000) const {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) != 1) {
            return std::nullopt;
        }
        char buf[512];
        const auto n = ::recv(fd_, buf, sizeof buf, 0);
        return n < 0 ? std::nullopt
                     : std::optional<std::string>(std::string(buf, static_cast<std::size_t>(n)));
    }

private:
    test::TempDir dir_;
    int fd_ = -1;
};

TEST(Notifier, ReadyReloadingStoppingAndStatusReachTheNotifySocket) {
    FakeSystemd sd;
    Notifier n;
    n.ready();
    EXPECT_EQ(sd.next(), "READY=1");
    n.reloading();
    const auto reloading = sd.next();
    ASSERT_TRUE(reloading);
    EXPECT_EQ(reloading->rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0U) << *reloading;
    n.status("3 of 4 links up");
    EXPECT_EQ(sd.next(), "STATUS=3 of 4 links up");
    n.status("3 of 4 links up");
    n.status("4 of 4 links up");
    EXPECT_EQ(sd.next(), "STATUS=4 of 4 links up") << "an unchanged status is not sent again";
    n.stopping();
    EXPECT_EQ(sd.next(), "STOPPING=1");
}

TEST(Notifier, TheWatchdogIsFedAtHalfTheIntervalSystemdAsksFor) {
    FakeSystemd sd;
    ::setenv("WATCHDOG_USEC", "200000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    EventLoop loop;
    Notifier n;
    n.start_watchdog(loop);
    EXPECT_EQ(sd.next(0), "WATCHDOG=1") << "once at the start";
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<std::string> again;
    while (!again && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
        loop.run_once(std::chrono::milliseconds(50));
        again = sd.next(0);
    }
    EXPECT_EQ(again, "WATCHDOG=1");
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(90));
}

TEST(Notifier, WithoutNotifySocketNothingIsSent) {
    FakeSystemd sd;
    ::unsetenv("NOTIFY_SOCKET"); // not started by systemd (Type=notify)
    ::setenv("WATCHDOG_USEC", "200000", 1);
    EventLoop loop;
    Notifier n;
    n.ready();
    n.status("x");
    n.start_watchdog(loop);
    loop.run_once(std::chrono::milliseconds(150));
    EXPECT_EQ(sd.next(100), std::nullopt);
}

} // namespace
} // namespace lonc
