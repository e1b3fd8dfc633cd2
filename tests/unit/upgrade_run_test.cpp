// The new supervisor's side of lonctl upgrade (upgrade_run.hpp): adopting
// the old binary's children and handing each peer over, a window at a time,
// then answering the waiting lonctl. Real Children on an EventLoop with a
// fake clock and fake ChildOps (children_test's way: each child is the
// other end of a socketpair the test holds), a real control server, and a
// fake UpgradeHost. The old binary's side (the check, the exec) needs a new
// binary to run: the Upgrade integration suite has it.
#include "lonc/core/control_words.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/supervisor/upgrade_run.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

EventLoop::TimePoint fake_time = EventLoop::Clock::now();
EventLoop::TimePoint fake_now() {
    return fake_time;
}

constexpr int exit_status(int code) {
    return (code & 0xff) << 8;
}

struct FakeChild {
    pid_t pid = 0;
    std::string id;
    UniqueFd end; // the child's end of its socketpair
};

class UpgradeRunTest : public ::testing::Test, public ChildrenEvents, public UpgradeHost {
protected:
    UpgradeRunTest() {
        auto& st = setup_.config.settings.emplace();
        st.host_id = "self";
        st.sock_dir = dir_.path() / "sock";
        st.daemons = dir_.path() / "daemons";
        std::filesystem::create_directories(st.sock_dir);
        std::filesystem::create_directories(st.log_dir());
        log::init({st.log_file(), "PARENT", spdlog::level::info, false});
        for (int i = 0; i < 10; ++i) {
            Peer p;
            p.id = "h" + std::to_string(i);
            p.ip = "10.0.0." + std::to_string(i + 1);
            setup_.config.hosts.peers.push_back(p);
        }
        fake_time = EventLoop::Clock::now();
        loop_.refresh_now();
        children_.emplace(
            loop_, setup_.opts, setup_.config, *this,
            ChildOps{[this](const Peer& peer, bool) { return spawn(peer); }, [](pid_t, int) {}});
        run_.emplace(loop_, setup_, *children_, control_, notifier_, *this);
    }
    ~UpgradeRunTest() override {
        run_.reset();
        children_.reset();
        log::init({});
    }

    // ChildrenEvents, as the supervisor forwards them.
    void probe(const Peer&) override {}
    void report_arrived(const std::string&) override {}
    void links_changed() override {}
    void handover_ended(const std::string& id, const std::optional<std::string>& f) override {
        run_->handover_ended(id, f);
    }
    void all_gone() override {}
    // UpgradeHost
    [[nodiscard]] bool ready() const override { return is_ready_; }
    [[nodiscard]] bool stopping() const override { return is_stopping_; }
    void peers_changed() override {}
    void upgrade_finished() override { ++finished_; }

    ChildSpawn spawn(const Peer& peer) {
        auto [parent_end, child_end] = ipc::make_pair();
        auto& c = made_.emplace_back();
        c.pid = next_pid_++;
        c.id = peer.id;
        c.end = std::move(child_end);
        return {c.pid, std::move(parent_end), ""};
    }
    // The old binary's children of hosts h0..h<n-1>, all with their link
    // up, and the waiting lonctl's connection (its other end: waiter_).
    Handover handover(int n) {
        Handover h;
        h.from_version = "0.0.9";
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        h.waiter_fd = fds[0];
        waiter_ = UniqueFd(fds[1]);
        for (int i = 0; i < n; ++i) {
            auto [parent_end, child_end] = ipc::make_pair();
            auto& c = made_.emplace_back();
            c.pid = next_pid_++;
            c.id = "h" + std::to_string(i);
            c.end = std::move(child_end);
            h.children.push_back({c.id, c.pid, parent_end.release(), true});
        }
        return h;
    }
    FakeChild* newest_child_of(const std::string& id) {
        for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
            if (it->id == id) {
                return &*it;
            }
        }
        return nullptr;
    }
    // The new child of id says its link is up; the old one is told to hand
    // off and exits.
    void hand_over(const std::string& id, const FakeChild& old) {
        auto* fresh = newest_child_of(id);
        ASSERT_NE(fresh, nullptr);
        ASSERT_TRUE(ipc::send(fresh->end.get(), ipc::Type::link_state, "up"));
        loop_.run_once(std::chrono::milliseconds(0));
        children_->child_exited(old.pid, exit_status(0));
    }
    // A lonctl upgrade asked now: what lonc answers it at once ("" if nothing).
    std::string lonctl_upgrade() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        const UniqueFd other(fds[1]);
        run_->request(control_.adopt(UniqueFd(fds[0])));
        loop_.run_once(std::chrono::milliseconds(0));
        char buf[512] = {};
        const auto n = ::recv(other.get(), buf, sizeof buf - 1, MSG_DONTWAIT);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    }
    // What lonc answered the waiting lonctl so far.
    std::string answer() {
        std::string got;
        loop_.run_once(std::chrono::milliseconds(0));
        char buf[4096];
        for (;;) {
            const auto n = ::recv(waiter_.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) {
                return got;
            }
            got.append(buf, static_cast<std::size_t>(n));
        }
    }

    test::TempDir dir_{"lonc-upgrade-run"};
    SupervisorSetup setup_{{}, {}, {}, {}, PidFile::adopt({}, {}), {}, {}, {}};
    EventLoop loop_{fake_now};
    Notifier notifier_;
    ControlServer control_{loop_, dir_ / ".lonc-control", [](auto, auto) {}};
    std::optional<Children> children_;
    std::optional<UpgradeRun> run_;
    std::deque<FakeChild> made_;
    pid_t next_pid_ = 900001;
    UniqueFd waiter_;
    bool is_ready_ = true;
    bool is_stopping_ = false;
    int finished_ = 0;
};

TEST_F(UpgradeRunTest, PeersAreHandedOverEightAtATimeThenLonctlIsAnswered) {
    run_->adopt(handover(10));
    EXPECT_TRUE(run_->under_way());
    const std::vector<FakeChild*> old = [&] {
        std::vector<FakeChild*> v;
        for (auto& c : made_) {
            v.push_back(&c);
        }
        return v;
    }();
    run_->pump();
    EXPECT_EQ(made_.size(), 10U + handover_window); // a new child for the first eight
    EXPECT_EQ(answer(), "");
    hand_over("h0", *old[0]);
    EXPECT_EQ(made_.size(), 10U + handover_window + 1); // h8's starts as h0's ends
    for (int i = 1; i < 10; ++i) {
        hand_over("h" + std::to_string(i), *old[static_cast<std::size_t>(i)]);
    }
    EXPECT_EQ(made_.size(), 20U);
    EXPECT_FALSE(run_->under_way());
    EXPECT_EQ(finished_, 1);
    const auto said = answer();
    EXPECT_EQ(said.rfind(std::string(words::upgraded) + "\n", 0), 0U) << said;
    EXPECT_NE(said.find("lonc 0.0.9 -> " LONC_VERSION ": 10 of 10 peers handed over"),
              std::string::npos)
        << said;
}

TEST_F(UpgradeRunTest, APeerWhoseNewChildDiesKeepsItsOldChildAndLonctlHearsWhy) {
    run_->adopt(handover(2));
    auto& old0 = made_[0];
    run_->pump();
    hand_over("h0", old0);
    auto* fresh1 = newest_child_of("h1");
    ASSERT_NE(fresh1, nullptr);
    children_->child_exited(fresh1->pid, exit_status(1));
    EXPECT_FALSE(run_->under_way());
    EXPECT_EQ(children_->slots().at("h1").pid, made_[1].pid); // the old child serves
    const auto said = answer();
    EXPECT_EQ(said.rfind(std::string(words::failed) + "\n", 0), 0U) << said;
    EXPECT_NE(said.find("1 of 2 peers handed over"), std::string::npos) << said;
    EXPECT_NE(said.find("1 peer kept the old child: h1: its new child"), std::string::npos) << said;
}

TEST_F(UpgradeRunTest, APeerGoneFromHostsTabIsNotHandedOverButDrains) {
    auto h = handover(2);
    h.children[1].id = "gone"; // the old binary had it; this configuration does not
    made_[1].id = "gone";
    run_->adopt(std::move(h));
    run_->pump();
    EXPECT_EQ(made_.size(), 3U); // a new child for h0 only
    hand_over("h0", made_[0]);
    EXPECT_NE(answer().find("1 of 1 peers handed over"), std::string::npos);
}

TEST_F(UpgradeRunTest, WhileOneRunsAnotherUpgradeIsRejected) {
    run_->adopt(handover(1));
    EXPECT_EQ(lonctl_upgrade(),
              std::string(words::rejected) + "\nan upgrade is already under way\n");
}

TEST_F(UpgradeRunTest, ShuttingDownItAnswersNoUpgrade) {
    is_stopping_ = true;
    EXPECT_EQ(lonctl_upgrade(), std::string(words::shutting_down) + "\n");
}

} // namespace
} // namespace lonc
