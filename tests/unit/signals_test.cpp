#include "lonc/runtime/signals.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace lonc {
namespace {

TEST(SignalReader, ABlockedSignalArrivesAsALoopEventWithItsSender) {
    block_handled_signals();
    EventLoop loop;
    std::vector<signalfd_siginfo> got;
    SignalReader reader(loop, {SIGUSR1, SIGHUP},
                        [&](const signalfd_siginfo& si) { got.push_back(si); });
    ASSERT_EQ(::kill(::getpid(), SIGHUP), 0);
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    for (int i = 0; i < 100 && got.size() < 2; ++i) {
        loop.run_once(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(got.size(), 2U);
    std::vector<std::uint32_t> signos{got[0].ssi_signo, got[1].ssi_signo};
    std::sort(signos.begin(), signos.end());
    EXPECT_EQ(signos, (std::vector<std::uint32_t>{SIGHUP, SIGUSR1}));
    EXPECT_EQ(got[0].ssi_pid, static_cast<std::uint32_t>(::getpid()));
}

TEST(SignalReader, SigpipeIsIgnoredSoAWriteToAClosedPeerIsAnError) {
    block_handled_signals();
    int fd[2];
    ASSERT_EQ(::pipe(fd), 0);
    ::close(fd[0]);
    errno = 0;
    EXPECT_EQ(::write(fd[1], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
    ::close(fd[1]);
}

TEST(SignalReader, AForkedChildKeepsTheMaskSoAnEarlySignalWaitsForItsReader) {
    block_handled_signals();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        reset_signals();
        ::kill(::getpid(), SIGTERM); // before any reader exists: must not kill
        EventLoop loop;
        int signo = 0;
        SignalReader reader(loop, {SIGTERM}, [&](const signalfd_siginfo& si) {
            signo = static_cast<int>(si.ssi_signo);
        });
        for (int i = 0; i < 50 && signo == 0; ++i) {
            loop.run_once(std::chrono::milliseconds(100));
        }
        ::_exit(signo == SIGTERM ? 42 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "the child died of the early signal";
    EXPECT_EQ(WEXITSTATUS(status), 42);
}

} // namespace
} // namespace lonc
