// Reloads as the supervisor runs them (reloader.hpp), with the supervisor
// played by a fake ReloadHost: real files read again by load_configuration,
// a real control socket for lonctl's answer, no children.
#include "lonc/core/control_words.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/supervisor/reloader.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

using namespace std::chrono_literals;

class FakeHost final : public ReloadHost {
public:
    bool is_ready = true;
    bool is_stopping = false;
    bool is_upgrading = false;
    std::vector<Loaded> applied;
    int reloaded_calls = 0;

    [[nodiscard]] bool ready() const override { return is_ready; }
    [[nodiscard]] bool stopping() const override { return is_stopping; }
    [[nodiscard]] bool upgrading() const override { return is_upgrading; }
    std::string apply(Loaded next) override {
        applied.push_back(std::move(next));
        return "added 1 (h2)";
    }
    void reloaded() override { ++reloaded_calls; }
};

void write_access_conf(const test::TempDir& dir, const std::filesystem::path& sock_dir) {
    dir.write("access.conf", "PerlSetVar lonHostID self\n"
                             "PerlSetVar londPort 5663\n"
                             "PerlSetVar lonDaemons " +
                                 (dir / "daemons").string() +
                                 "\n"
                                 "PerlSetVar lonTabDir " +
                                 (dir / "tabs").string() +
                                 "\n"
                                 "PerlSetVar lonSockDir " +
                                 sock_dir.string() +
                                 "\n"
                                 "PerlSetVar lonDocRoot " +
                                 (dir / "html").string() + "\n");
}

// A configuration in dir, loaded as lonc started with it.
SupervisorSetup started_in(const test::TempDir& dir) {
    for (const char* d : {"daemons/logs", "tabs", "sock/delayed", "html"}) {
        std::filesystem::create_directories(dir / d);
    }
    write_access_conf(dir, dir / "sock");
    dir.write("tabs/hosts.tab", "self:dom:library:self.example:127.0.0.1\n"
                                "h1:dom:library:h1.example:127.0.0.2\n");
    std::vector<std::string> argv = {"lonc", "-c", (dir / "access.conf").string()};
    auto loaded = load_configuration(argv, dir.path());
    EXPECT_EQ(loaded.code(), exit_ok) << loaded.problems().front();
    return SupervisorSetup{
        loaded.opts, loaded.config, argv, dir.path(), PidFile::adopt({}, {}), {}, {}, {}};
}

class ReloaderTest : public ::testing::Test {
protected:
    ReloaderTest() {
        log::init({dir_ / "daemons/logs/lonc.log", "PARENT", spdlog::level::info, false});
        std::string error;
        EXPECT_TRUE(control_.open(error)) << error;
    }
    ~ReloaderTest() override { log::init({}); }

    void write_access_conf(const std::filesystem::path& sock_dir) const {
        lonc::write_access_conf(dir_, sock_dir);
    }
    void add_peer() const {
        dir_.write("tabs/hosts.tab", "self:dom:library:self.example:127.0.0.1\n"
                                     "h1:dom:library:h1.example:127.0.0.2\n"
                                     "h2:dom:library:h2.example:127.0.0.3\n");
    }
    [[nodiscard]] std::string log_text() const {
        return test::slurp(dir_ / "daemons/logs/lonc.log");
    }

    // lonctl reload: connects and says "reload" (the handler asks reloader_
    // with this connection as the waiter).
    [[nodiscard]] UniqueFd lonctl_reload_sent() const {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        const auto path = (dir_ / ".lonc-control").string();
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::send(fd.get(), "reload\n", 7, MSG_NOSIGNAL), 7);
        return fd;
    }
    // Turns the loop until lonc closed fd, for at most limit; what it said.
    std::optional<std::string> answer(const UniqueFd& fd, std::chrono::milliseconds limit = 5s) {
        std::string got;
        const auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            loop_.run_once(10ms);
            char buf[4096];
            const auto n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                got.append(buf, static_cast<std::size_t>(n));
            } else if (n == 0) {
                return got;
            }
        }
        return std::nullopt;
    }
    std::optional<std::string> lonctl_reload() { return answer(lonctl_reload_sent()); }

    test::TempDir dir_{"lonc-reloader-test"};
    SupervisorSetup setup_ = started_in(dir_);
    EventLoop loop_;
    Notifier notifier_;
    FakeHost host_;
    ControlServer control_{loop_, dir_ / ".lonc-control",
                           [this](ControlServer::ConnId id, std::string_view line) {
                               EXPECT_EQ(line, words::reload);
                               reloader_.request("lonctl reload", id);
                           }};
    Reloader reloader_{setup_, control_, notifier_, host_, 1000};
};

TEST_F(ReloaderTest, AGoodConfigurationIsAppliedAndSaysWhatWasDone) {
    add_peer();
    reloader_.request("HUP");
    ASSERT_EQ(host_.applied.size(), 1U);
    EXPECT_EQ(host_.applied[0].config.hosts.peers.size(), 3U); // self, h1 and the new h2
    EXPECT_EQ(host_.reloaded_calls, 1);
    const auto& st = reloader_.status_now();
    EXPECT_TRUE(st.success);
    EXPECT_EQ(st.result, "applied: added 1 (h2)");
    EXPECT_GE(st.last_success, st.time);
    EXPECT_NE(log_text().find("HUP: configuration reloaded: added 1 (h2)"), std::string::npos)
        << log_text();
}

TEST_F(ReloaderTest, BeforeTheFirstProbesReloadsWaitAndRunAsOne) {
    host_.is_ready = false;
    reloader_.request("HUP");
    reloader_.request("USR2");
    EXPECT_TRUE(host_.applied.empty());
    EXPECT_EQ(reloader_.status_now().result, "loaded at start");
    EXPECT_NE(log_text().find("HUP: reload as soon as the first probes are done"),
              std::string::npos);
    host_.is_ready = true;
    reloader_.run_pending();
    EXPECT_EQ(host_.applied.size(), 1U);
    reloader_.run_pending(); // nothing waits any more
    EXPECT_EQ(host_.applied.size(), 1U);
}

TEST_F(ReloaderTest, DuringAnUpgradeALonctlReloadIsAnsweredWhenItIsDone) {
    host_.is_upgrading = true;
    add_peer();
    const auto fd = lonctl_reload_sent();
    EXPECT_FALSE(answer(fd, 300ms)); // it waits
    EXPECT_TRUE(host_.applied.empty());
    EXPECT_NE(log_text().find("reload as soon as the upgrade is done"), std::string::npos);
    host_.is_upgrading = false;
    reloader_.run_pending();
    EXPECT_EQ(host_.applied.size(), 1U);
    EXPECT_EQ(answer(fd), std::string(words::applied) + "\nadded 1 (h2)\n");
}

TEST_F(ReloaderTest, ABrokenFileChangesNothingAndLonctlLearnsWhy) {
    dir_.write("tabs/hosts.tab", "self:dom:library:self.example:127.0.0.1\nh1:broken\n");
    const auto answer = lonctl_reload();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->rfind(std::string(words::rejected) + "\n", 0), 0U) << *answer;
    EXPECT_NE(answer->find("hosts.tab:2"), std::string::npos) << *answer;
    EXPECT_TRUE(host_.applied.empty());
    EXPECT_EQ(host_.reloaded_calls, 1); // the refusal shows in the status files too
    const auto& st = reloader_.status_now();
    EXPECT_FALSE(st.success);
    EXPECT_EQ(st.result.rfind("rejected: ", 0), 0U) << st.result;
    EXPECT_EQ(st.last_success, 1000); // the start's
    EXPECT_NE(log_text().find("reload rejected; lonc runs on with its configuration unchanged"),
              std::string::npos);
}

TEST_F(ReloaderTest, WhatNeedsARestartIsRefused) {
    std::filesystem::create_directories(dir_ / "sock2/delayed");
    write_access_conf(dir_ / "sock2");
    reloader_.request("HUP");
    EXPECT_TRUE(host_.applied.empty());
    const auto& st = reloader_.status_now();
    EXPECT_FALSE(st.success);
    EXPECT_NE(st.result.find("lonSockDir changed from"), std::string::npos) << st.result;
    EXPECT_NE(st.result.find("that needs a restart of lonc"), std::string::npos) << st.result;
}

TEST_F(ReloaderTest, WhileStoppingLonctlHearsShuttingDown) {
    host_.is_stopping = true;
    const auto answer = lonctl_reload();
    ASSERT_TRUE(answer);
    EXPECT_EQ(*answer, std::string(words::shutting_down) + "\n");
    EXPECT_TRUE(host_.applied.empty());
}

TEST_F(ReloaderTest, ARemovedPeersDelayedFilesAreListedUntilTheyAreGone) {
    dir_.write("sock/delayed/100.m.h1", "echo:x\n");
    dir_.write("sock/delayed/101.m.h1.bad", "echo:y\n"); // set aside: not deliverable anyway
    reloader_.peers_removed({"h1"});
    EXPECT_NE(log_text().find("h1 was removed from hosts.tab; 1 delayed message for it can no "
                              "longer be delivered: 100.m.h1"),
              std::string::npos)
        << log_text();
    const auto before = reloader_.status_now().undeliverable;
    ASSERT_EQ(before.count("h1"), 1U);
    EXPECT_EQ(before.at("h1"), std::vector<std::string>{"100.m.h1"});
    std::filesystem::remove(dir_ / "sock/delayed/100.m.h1");
    EXPECT_TRUE(reloader_.status_now().undeliverable.empty());
    // Back in hosts.tab before its files went: deliverable again, not listed.
    dir_.write("sock/delayed/102.m.h1", "echo:z\n");
    reloader_.peers_removed({"h1"});
    reloader_.peers_added({"h1"});
    EXPECT_TRUE(reloader_.status_now().undeliverable.empty());
}

} // namespace
} // namespace lonc
