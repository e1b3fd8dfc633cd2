#include "lonc/supervisor/upgrade.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

TEST(Handover, EncodesAndDecodesEveryField) {
    Handover h;
    h.pid_file_fd = 3;
    h.waiter_fd = 9;
    h.from_version = "0.1.0";
    h.started_ms = 1764860000123;
    h.children = {{"msul1", 4242, 5, true}, {"a.b-c_d", 4243, 7, false}};
    std::string error;
    const auto back = Handover::decode(h.encode(), error);
    ASSERT_TRUE(back) << error << " in " << h.encode();
    EXPECT_EQ(back->pid_file_fd, 3);
    EXPECT_EQ(back->waiter_fd, 9);
    EXPECT_EQ(back->from_version, "0.1.0");
    EXPECT_EQ(back->started_ms, 1764860000123);
    ASSERT_EQ(back->children.size(), 2U);
    EXPECT_EQ(back->children[0].id, "msul1");
    EXPECT_EQ(back->children[0].pid, 4242);
    EXPECT_EQ(back->children[0].fd, 5);
    EXPECT_TRUE(back->children[0].link_up);
    EXPECT_EQ(back->children[1].id, "a.b-c_d");
    EXPECT_FALSE(back->children[1].link_up);
    EXPECT_EQ(back->fds(), (std::vector<int>{3, 5, 7, 9}));
}

TEST(Handover, NoWaiterAndNoChildrenIsFine) {
    Handover h;
    h.pid_file_fd = 4;
    std::string error;
    const auto back = Handover::decode(h.encode(), error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(back->waiter_fd, -1);
    EXPECT_TRUE(back->children.empty());
    EXPECT_EQ(back->fds(), std::vector<int>{4});
}

TEST(Handover, AnythingMalformedIsRefusedWithTheField) {
    const char* const bad[] = {
        "",                                          // nothing
        "v2 pidfile=3",                              // another format
        "v1 waiter=5",                               // no pid file
        "v1 pidfile=1",                              // stdout is not ours to keep
        "v1 pidfile=3 waiter=x",                     // not a number
        "v1 pidfile=3 child=h1/12/5",                // a field short
        "v1 pidfile=3 child=h1/12/5/2",              // up is 0 or 1
        "v1 pidfile=3 child=/12/5/1",                // no id
        "v1 pidfile=3 child=h1/0/5/1",               // no pid
        "v1 pidfile=3 child=h1/12/3/1",              // a descriptor twice
        "v1 pidfile=3 surprise=1",                   // an unknown field
        "v1 pidfile=3 child=h\x01/12/5/1",           // a control character in the id
        "v1 pidfile=3 started=99999999999999999999", // out of range
    };
    for (const char* text : bad) {
        std::string error;
        EXPECT_FALSE(Handover::decode(text, error)) << "accepted: " << text;
        EXPECT_FALSE(error.empty()) << text;
    }
}

struct Checked {
    CheckVerdict verdict = CheckVerdict::failed;
    std::string out;
};

// Runs a check on a loop of its own until it is done.
Checked check(const std::string& exe, const std::vector<std::string>& args, double timeout) {
    EventLoop loop;
    std::optional<Checked> r;
    BinaryCheck c(loop, exe, args, timeout, [&](CheckVerdict v, std::string out) {
        r = Checked{v, std::move(out)};
    });
    while (!r) {
        loop.run_once(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(c.finished());
    return *r;
}

TEST(CheckBinary, ExitZeroPassesAndWhatItPrintedIsKept) {
    test::TempDir dir("lonc-upgrade-unit");
    dir.write("good", "#!/bin/sh\necho \"checked $*\"\nexit 0\n");
    std::filesystem::permissions(dir / "good", std::filesystem::perms::owner_all);
    const auto r = check((dir / "good").string(), {"-c", "/x/access.conf"}, 10);
    EXPECT_EQ(r.verdict, CheckVerdict::passed);
    EXPECT_EQ(r.out, "checked -t -c /x/access.conf\n");
}

// A configuration a start takes, skipping a bad line (-t exit 5), passes.
TEST(CheckBinary, ProblemsAStartSkipsPassWithProblems) {
    test::TempDir dir("lonc-upgrade-unit");
    dir.write("skips", "#!/bin/sh\necho 'hosts.tab:4: bad line'\nexit 5\n");
    std::filesystem::permissions(dir / "skips", std::filesystem::perms::owner_all);
    const auto r = check((dir / "skips").string(), {}, 10);
    EXPECT_EQ(r.verdict, CheckVerdict::passed_with_problems);
    EXPECT_EQ(r.out, "hosts.tab:4: bad line\n");
}

TEST(CheckBinary, AFailureSaysHowItEnded) {
    test::TempDir dir("lonc-upgrade-unit");
    dir.write("bad", "#!/bin/sh\necho 'access.conf:3: lonSockDir missing' >&2\nexit 1\n");
    dir.write("slow", "#!/bin/sh\nexec sleep 30\n");
    dir.write("quiet", "#!/bin/sh\nexec sleep 30 >/dev/null 2>&1\n"); // output closed early
    for (const auto* f : {"bad", "slow", "quiet"}) {
        std::filesystem::permissions(dir / f, std::filesystem::perms::owner_all);
    }
    auto r = check((dir / "bad").string(), {}, 10);
    EXPECT_EQ(r.verdict, CheckVerdict::failed);
    EXPECT_NE(r.out.find("access.conf:3: lonSockDir missing"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("-t exited 1"), std::string::npos) << r.out;
    for (const auto* f : {"slow", "quiet"}) {
        r = check((dir / f).string(), {}, 0.3);
        EXPECT_EQ(r.verdict, CheckVerdict::failed) << f;
        EXPECT_NE(r.out.find("did not finish"), std::string::npos) << f << ": " << r.out;
    }
    r = check((dir / "missing").string(), {}, 10);
    EXPECT_EQ(r.verdict, CheckVerdict::failed);
    EXPECT_NE(r.out.find("cannot execute"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("No such file or directory"), std::string::npos) << r.out;
}

// The loop is free while a check runs: a timer fires in the meantime.
TEST(CheckBinary, TheLoopRunsWhileItChecks) {
    test::TempDir dir("lonc-upgrade-unit");
    dir.write("slowish", "#!/bin/sh\nsleep 0.5\nexit 0\n");
    std::filesystem::permissions(dir / "slowish", std::filesystem::perms::owner_all);
    EventLoop loop;
    std::optional<CheckVerdict> done;
    bool ticked_before_done = false;
    Timer tick(loop, [&] { ticked_before_done = !done.has_value(); });
    BinaryCheck c(loop, (dir / "slowish").string(), {}, 10,
                  [&](CheckVerdict v, std::string /*out*/) { done = v; });
    tick.arm_in(seconds(0.05));
    while (!done) {
        loop.run_once(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(*done, CheckVerdict::passed);
    EXPECT_TRUE(ticked_before_done);
}

TEST(ConfigSnapshot, CarriesEveryOptionAndBothFilesAcrossAnExec) {
    Loaded before;
    before.opts.request_timeout = 42.5;
    before.opts.mail_command = "/usr/sbin/sendmail -t -oi";
    before.opts.metrics_file = "/var/lib/lonc/it's.prom";
    before.opts.log_level = "debug";
    before.config = config_from("/etc/access.conf",
                                "PerlSetVar lonHostID h0\nPerlSetVar londPort 5663\n"
                                "PerlSetVar lonDaemons /d\nPerlSetVar lonTabDir /t\n"
                                "PerlSetVar lonSockDir /s\nPerlSetVar lonDocRoot /r\n",
                                std::string("h0:dom:library:h0.x:127.0.0.1\n"
                                            "h1:dom:library:h1.x:127.0.0.2\n"));
    ASSERT_TRUE(before.config.ok());
    const int fd = snapshot_fd(ConfigSnapshot::of(before.opts, before.config));
    ASSERT_GE(fd, 0);
    const auto back = read_snapshot(fd);
    ASSERT_TRUE(back);
    Loaded after; // the command line read again, the files changed since
    after.opts.request_timeout = 7;
    std::string error;
    ASSERT_TRUE(back->apply(after, error)) << error;
    EXPECT_EQ(after.opts.request_timeout, 42.5);
    EXPECT_EQ(after.opts.mail_command, "/usr/sbin/sendmail -t -oi");
    EXPECT_EQ(after.opts.metrics_file, "/var/lib/lonc/it's.prom");
    EXPECT_EQ(after.opts.log_level, "debug");
    ASSERT_EQ(after.config.hosts.peers.size(), 2U);
    EXPECT_EQ(after.config.hosts.peers[1].ip, "127.0.0.2");
    EXPECT_EQ(after.config.settings->sock_dir, "/s");
    EXPECT_FALSE(ConfigSnapshot::decode("lonc-config v1\n99\nshort"));
    EXPECT_FALSE(ConfigSnapshot::decode("something else"));
}

TEST(HandoverQueue, AWindowAtATimeInOrderAndTheOutcomeCountsThem) {
    HandoverQueue q({"a", "b", "c"}, 2);
    EXPECT_EQ(q.next(), "a");
    EXPECT_EQ(q.next(), "b");
    EXPECT_EQ(q.next(), std::nullopt); // two under way
    q.handed();
    EXPECT_EQ(q.next(), "c");
    q.nothing_to_do(); // c's old child had died: nothing to hand over
    EXPECT_FALSE(q.finished());
    q.handed();
    EXPECT_TRUE(q.finished());
    EXPECT_TRUE(q.ok());
    EXPECT_EQ(q.outcome("0.1", "0.2", 1.25), "lonc 0.1 -> 0.2: 3 of 3 peers handed over in 1.2 s");
}

TEST(HandoverQueue, AFailureStartsNoFurtherPeerAndNamesIt) {
    HandoverQueue q({"a", "b", "c", "d"}, 2);
    (void)q.next();
    (void)q.next();
    q.failed("a: its new child died");
    EXPECT_EQ(q.next(), std::nullopt) << "no peer after a failure";
    EXPECT_FALSE(q.finished()); // b is still under way
    q.handed();
    EXPECT_TRUE(q.finished());
    EXPECT_FALSE(q.ok());
    EXPECT_EQ(q.outcome("0.1", "0.2", 2),
              "lonc 0.1 -> 0.2: 1 of 4 peers handed over in 2.0 s; 3 peers kept the old child: "
              "a: its new child died");
}

TEST(HandoverQueue, NoPeersIsFinishedAtOnce) {
    const HandoverQueue q({}, 8);
    EXPECT_TRUE(q.finished());
    EXPECT_TRUE(q.ok());
}

TEST(ExecHandover, AFailedExecPutsEverythingBack) {
    test::TempDir dir("lonc-upgrade-unit");
    const int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 3);
    Handover h;
    h.pid_file_fd = fd;
    const auto why = exec_handover((dir / "missing").string(), {}, h);
    EXPECT_EQ(why, "No such file or directory");
    EXPECT_EQ(std::getenv(handover_env), nullptr);
    EXPECT_EQ(::fcntl(fd, F_GETFD), FD_CLOEXEC);
    ::close(fd);
}

TEST(Arrival, NoUpgradeNoHandoverNoProblem) {
    ::unsetenv(handover_env);
    const auto a = Arrival::from_environment();
    EXPECT_FALSE(a.upgrading);
    EXPECT_FALSE(a.handover);
    EXPECT_TRUE(a.problems.empty());
}

TEST(Arrival, AnUnreadableHandoverStartsAfreshAndSaysWhy) {
    ::setenv(handover_env, "v1 pidfile=nonsense", 1);
    const auto a = Arrival::from_environment();
    EXPECT_TRUE(a.upgrading);
    EXPECT_FALSE(a.handover);
    ASSERT_EQ(a.problems.size(), 1U);
    EXPECT_NE(a.problems[0].find("starting afresh"), std::string::npos) << a.problems[0];
    EXPECT_EQ(std::getenv(handover_env), nullptr) << "not for our children";
}

TEST(Arrival, KeepsTheNamedDescriptorsAndClosesEveryOther) {
    // In a child: close_the_rest() closes this test's own descriptors too.
    int keep[2];
    int stray[2];
    ASSERT_EQ(::pipe(keep), 0);
    ASSERT_EQ(::pipe(stray), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        Handover h;
        h.pid_file_fd = keep[0];
        h.children.push_back({"h1", 1, keep[1], true});
        ::setenv(handover_env, h.encode().c_str(), 1);
        auto a = Arrival::from_environment();
        int code = 0;
        if (!a.handover || std::getenv(handover_env) != nullptr) {
            code |= 1;
        }
        if (::fcntl(keep[0], F_GETFD) != FD_CLOEXEC || ::fcntl(keep[1], F_GETFD) != FD_CLOEXEC) {
            code |= 2; // not for the binary check or the children we start
        }
        a.close_the_rest();
        if (::fcntl(keep[0], F_GETFD) < 0 || ::fcntl(keep[1], F_GETFD) < 0) {
            code |= 4;
        }
        if (::fcntl(stray[0], F_GETFD) >= 0 || ::fcntl(stray[1], F_GETFD) >= 0) {
            code |= 8;
        }
        if (::fcntl(0, F_GETFD) < 0 || ::fcntl(2, F_GETFD) < 0) {
            code |= 16;
        }
        ::_exit(code);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1 decode, 2 close-on-exec, 4 kept, 8 stray, 16 stdio";
    for (const int fd : {keep[0], keep[1], stray[0], stray[1]}) {
        ::close(fd);
    }
}

TEST(Arrival, TakesTheOldSupervisorsConfigurationOrSaysWhyNot) {
    Loaded old;
    old.opts.request_timeout = 42.5;
    old.config = config_from("/etc/access.conf",
                             "PerlSetVar lonHostID h0\nPerlSetVar londPort 5663\n"
                             "PerlSetVar lonDaemons /d\nPerlSetVar lonTabDir /t\n"
                             "PerlSetVar lonSockDir /s\nPerlSetVar lonDocRoot /r\n",
                             std::string("h0:dom:library:h0.x:127.0.0.1\n"
                                         "h1:dom:library:h1.x:127.0.0.2\n"));
    ASSERT_TRUE(old.config.ok());
    Arrival a;
    a.handover.emplace();
    a.handover->config_fd = snapshot_fd(ConfigSnapshot::of(old.opts, old.config));
    ASSERT_GE(a.handover->config_fd, 0);
    Loaded now;
    a.take_configuration(now);
    EXPECT_TRUE(a.problems.empty());
    EXPECT_EQ(a.handover->config_fd, -1) << "read once, and closed";
    EXPECT_EQ(now.opts.request_timeout, 42.5);
    EXPECT_EQ(now.config.hosts.peers.size(), 2U);

    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    ASSERT_EQ(::write(p[1], "garbage", 7), 7);
    ::close(p[1]);
    Arrival bad;
    bad.handover.emplace();
    bad.handover->config_fd = p[0]; // cannot seek: unreadable
    Loaded kept;
    kept.opts.request_timeout = 7;
    bad.take_configuration(kept);
    ASSERT_EQ(bad.problems.size(), 1U);
    EXPECT_NE(bad.problems[0].find("running with the files as they are now"), std::string::npos)
        << bad.problems[0];
    EXPECT_EQ(kept.opts.request_timeout, 7) << "the files as they are now";
}

TEST(OwnExecutable, IsThisTestBinary) {
    const auto exe = own_executable();
    EXPECT_EQ(std::filesystem::path(exe).filename(), "upgrade_test") << exe;
}

} // namespace
} // namespace lonc
