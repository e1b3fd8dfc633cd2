#include "lonc/runtime/daemon.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process.hpp"
#include "temp_dir.hpp"

namespace lonc {
namespace {

using test::Process;
using test::TempDir;

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(PidFile, TheFirstTakesItASecondIsToldLoncIsRunning) {
    TempDir dir("lonc-daemon-test");
    PidFileError error;
    auto first = PidFile::acquire(dir / "lonc.pid", error);
    ASSERT_TRUE(first) << error.text;
    ASSERT_TRUE(first->write(4242));
    EXPECT_EQ(slurp(dir / "lonc.pid"), "4242\n");
    // A second lonc (its own open file description) finds the lock held.
    auto second = PidFile::acquire(dir / "lonc.pid", error);
    EXPECT_FALSE(second);
    EXPECT_EQ(error.kind, PidFileError::Kind::running);
    EXPECT_NE(error.text.find("pid 4242"), std::string::npos) << error.text;
    first->remove();
    EXPECT_FALSE(std::filesystem::exists(dir / "lonc.pid"));
    EXPECT_TRUE(PidFile::acquire(dir / "lonc.pid", error)) << "free again once removed";
}

TEST(PidFile, AMissingDirectoryIsCannotOpenWithThePathAndTheCause) {
    TempDir dir("lonc-daemon-test");
    PidFileError error;
    EXPECT_FALSE(PidFile::acquire(dir / "no/such/dir/lonc.pid", error));
    EXPECT_EQ(error.kind, PidFileError::Kind::cannot_open);
    EXPECT_NE(error.text.find("no/such/dir/lonc.pid"), std::string::npos) << error.text;
    EXPECT_NE(error.text.find("No such file or directory"), std::string::npos) << error.text;
}

TEST(PidFile, AStaleFileNamingADeadOrForeignProcessIsTakenOver) {
    TempDir dir("lonc-daemon-test");
    auto sleeper = Process::spawn({"/bin/sleep", "30"});
    dir.write("lonc.pid", std::to_string(sleeper.pid()) + "\n"); // alive, not lonc
    PidFileError error;
    EXPECT_TRUE(PidFile::acquire(dir / "lonc.pid", error)) << error.text;
}

TEST(PidFile, AFileNamingALivePerlLoncMeansRunningEvenWithoutALock) {
    TempDir dir("lonc-daemon-test");
    // The original is perl running .../lonc; it never flocks its pid file.
    dir.write("perl/lonc", "while :; do sleep 0.1; done\n");
    auto perl_lonc = Process::spawn({"/bin/sh", (dir / "perl/lonc").string()});
    ASSERT_TRUE(test::wait_until([&] { return is_lonc_process(perl_lonc.pid()); },
                                 std::chrono::seconds(5)));
    dir.write("lonc.pid", std::to_string(perl_lonc.pid()) + "\n");
    PidFileError error;
    EXPECT_FALSE(PidFile::acquire(dir / "lonc.pid", error));
    EXPECT_EQ(error.kind, PidFileError::Kind::running);
    EXPECT_NE(error.text.find(std::to_string(perl_lonc.pid())), std::string::npos) << error.text;
}

TEST(IsLoncProcess, ByProgramNameNotByPidAlone) {
    auto sleeper = Process::spawn({"/bin/sleep", "30"});
    EXPECT_FALSE(is_lonc_process(sleeper.pid()));
    sleeper.kill();
    EXPECT_FALSE(is_lonc_process(sleeper.pid())) << "a dead process";
    TempDir dir("lonc-daemon-test");
    dir.write("bin/lonc", "#!/bin/sh\nwhile :; do sleep 0.1; done\n");
    std::filesystem::permissions(dir / "bin/lonc", std::filesystem::perms::owner_all);
    auto lonc = Process::spawn({(dir / "bin/lonc").string()});
    EXPECT_TRUE(
        test::wait_until([&] { return is_lonc_process(lonc.pid()); }, std::chrono::seconds(5)));
}

TEST(Launcher, TheLaunchingProcessExitsWithTheDaemonsCodeAndMessage) {
    TempDir dir("lonc-daemon-test");
    const auto out = dir / "stderr";
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // The "launching process": daemonize() returns only in the daemon.
        const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ::dup2(fd, 2) != 2) {
            ::_exit(99);
        }
        auto launcher = daemonize();
        launcher.report(3, "lonc: configuration broken: access.conf:7");
        launcher.report(0, "ignored: the verdict was given");
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 3);
    EXPECT_NE(slurp(out).find("configuration broken: access.conf:7"), std::string::npos)
        << slurp(out);
}

} // namespace
} // namespace lonc
