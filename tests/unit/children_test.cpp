// The supervisor's children (children.hpp) on a real EventLoop with a fake
// clock: each "child" is the other end of a real socketpair the test holds,
// its death is a status the test hands to child_exited(), and signals are
// recorded, never sent. No fork, no root, no lond.
#include "lonc/runtime/log.hpp"
#include "lonc/supervisor/children.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <utility>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

EventLoop::TimePoint fake_time = EventLoop::Clock::now();
EventLoop::TimePoint fake_now() {
    return fake_time;
}

// wait(2) statuses.
constexpr int exited(int code) {
    return (code & 0xff) << 8;
}
constexpr int killed_by(int sig) {
    return sig;
}

// Fake pids: never signalled for real (signals are only recorded).
constexpr pid_t first_pid = 900001;

struct FakeChild {
    pid_t pid = 0;
    Peer peer;
    bool successor = false;
    UniqueFd end; // the child's end of the socketpair
};

class ChildrenTest : public ::testing::Test, public ChildrenEvents {
protected:
    ChildrenTest() {
        settings_.host_id = "self";
        settings_.sock_dir = dir_.path() / "sock";
        settings_.daemons = dir_.path() / "daemons";
        std::filesystem::create_directories(settings_.sock_dir);
        std::filesystem::create_directories(settings_.log_dir());
        log::init({settings_.log_file(), "PARENT", spdlog::level::info, false});
        config_.settings = settings_;
        opts_.max_attempts = 10;
        opts_.request_timeout = 10;
        fake_time = EventLoop::Clock::now();
        loop_.refresh_now();
        children_.emplace(
            loop_, opts_, config_, *this,
            ChildOps{[this](const Peer& peer, bool successor) { return spawn(peer, successor); },
                     [this](pid_t pid, int sig) { signals_.emplace_back(pid, sig); }});
    }
    ~ChildrenTest() override {
        children_.reset();
        log::init({});
    }

    // ChildrenEvents
    void probe(const Peer& peer) override { probes_.push_back(peer); }
    void report_arrived(const std::string& id) override { reports_.push_back(id); }
    void links_changed() override { ++links_changed_; }
    void handover_ended(const std::string& id, const std::optional<std::string>& failure) override {
        if (on_handover_ended) {
            on_handover_ended(id); // calls Children back, as a reload after the upgrade does
        }
        handovers_.emplace_back(id, failure);
    }
    std::function<void(const std::string&)> on_handover_ended;
    void all_gone() override { ++all_gone_; }

    ChildSpawn spawn(const Peer& peer, bool successor) {
        if (fail_spawns_ > 0) {
            --fail_spawns_;
            return {0, {}, "fork: Resource temporarily unavailable"};
        }
        auto [parent_end, child_end] = ipc::make_pair();
        auto& c = made_.emplace_back();
        c.pid = next_pid_++;
        c.peer = peer;
        c.successor = successor;
        c.end = std::move(child_end);
        return {c.pid, std::move(parent_end), ""};
    }

    Children& children() { return *children_; }
    const Children::Slot& slot(const std::string& id) { return children().slots().at(id); }
    static Peer peer(const std::string& id, const std::string& ip = "10.0.0.1") {
        Peer p;
        p.id = id;
        p.ip = ip;
        return p;
    }
    // A slot for id with a running child: the last one made.
    FakeChild& running(const std::string& id, const std::string& ip = "10.0.0.1") {
        EXPECT_TRUE(children().add(peer(id, ip)));
        children().probed(id, true, "");
        EXPECT_EQ(slot(id).state, SlotState::running);
        return made_.back();
    }
    // An old binary's child, adopted (as after an upgrade's exec).
    FakeChild& adopted(const std::string& id, bool link_up) {
        auto [parent_end, child_end] = ipc::make_pair();
        auto& c = made_.emplace_back();
        c.pid = next_pid_++;
        c.peer = peer(id);
        c.end = std::move(child_end);
        const auto p = peer(id);
        EXPECT_TRUE(children().adopt(id, c.pid, std::move(parent_end), link_up, &p));
        return c;
    }

    void advance(double s) {
        fake_time += seconds(s);
        loop_.run_once(std::chrono::milliseconds(0));
    }
    void die(const FakeChild& c, int status) { children().child_exited(c.pid, status); }
    // The child says something; the loop reads it.
    void say(const FakeChild& c, ipc::Type type, std::string_view payload = {}) {
        ASSERT_TRUE(ipc::send(c.end.get(), type, payload));
        loop_.run_once(std::chrono::milliseconds(0));
    }
    // Every message the supervisor side sent c so far.
    static std::vector<ipc::Message> received(const FakeChild& c) {
        std::vector<ipc::Message> out;
        char buf[ipc::max_message + 1];
        for (;;) {
            const auto n = ::recv(c.end.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) {
                return out;
            }
            std::string error;
            auto m = ipc::parse(std::string_view(buf, static_cast<std::size_t>(n)), error);
            EXPECT_TRUE(m) << error;
            if (m) {
                out.push_back(std::move(*m));
            }
        }
    }
    static std::vector<ipc::Type> types(const std::vector<ipc::Message>& ms) {
        std::vector<ipc::Type> out;
        for (const auto& m : ms) {
            out.push_back(m.type);
        }
        return out;
    }
    std::string log_text() const {
        std::ifstream in(settings_.log_file());
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

    test::TempDir dir_{"lonc-children"};
    Settings settings_;
    Options opts_;
    Config config_;
    EventLoop loop_{fake_now};
    std::optional<Children> children_;

    std::deque<FakeChild> made_; // every child spawned, in order
    pid_t next_pid_ = first_pid;
    int fail_spawns_ = 0;
    std::vector<std::pair<pid_t, int>> signals_;
    std::vector<Peer> probes_;
    std::vector<std::string> reports_;
    int links_changed_ = 0;
    std::vector<std::pair<std::string, std::optional<std::string>>> handovers_;
    int all_gone_ = 0;
};

using T = ipc::Type;

TEST(DescribeExit, SaysHowAChildEnded) {
    EXPECT_EQ(describe_exit(exited(0)), "exit 0");
    EXPECT_EQ(describe_exit(exited(3)), "exit 3");
    EXPECT_EQ(describe_exit(killed_by(SIGKILL)), "signal 9 (Killed)");
    EXPECT_EQ(describe_exit(killed_by(SIGSEGV) | 0x80),
              "signal 11 (Segmentation fault), core dumped");
}

TEST_F(ChildrenTest, APeerIsProbedThenGetsAChildWhenReachable) {
    EXPECT_TRUE(children().add(peer("h1")));
    ASSERT_EQ(probes_.size(), 1U);
    EXPECT_EQ(probes_[0].id, "h1");
    EXPECT_EQ(slot("h1").state, SlotState::probing);
    EXPECT_TRUE(made_.empty());

    children().probed("h1", true, "");
    ASSERT_EQ(made_.size(), 1U);
    EXPECT_FALSE(made_[0].successor);
    EXPECT_EQ(slot("h1").pid, made_[0].pid);
    EXPECT_EQ(slot("h1").starts, 1U);
    EXPECT_EQ(children().pids().at(made_[0].pid), "h1");
}

TEST_F(ChildrenTest, AnUnreachablePeerIsProbedAgainUntilItAnswers) {
    (void)children().add(peer("h1"));
    children().probed("h1", false, "timed out");
    EXPECT_EQ(slot("h1").state, SlotState::unreachable);
    EXPECT_TRUE(made_.empty());
    children().reprobe();
    EXPECT_EQ(probes_.size(), 2U);
    children().probed("h1", true, "");
    EXPECT_EQ(made_.size(), 1U);
    EXPECT_EQ(slot("h1").state, SlotState::running);
    children().reprobe(); // running: not probed
    EXPECT_EQ(probes_.size(), 2U);
}

TEST_F(ChildrenTest, RestartsAtOnceThenAfterOneTwoFourSeconds) {
    (void)running("h1");
    const std::vector<double> delays = {0, 1, 2, 4};
    for (std::size_t i = 0; i < delays.size(); ++i) {
        const auto before = made_.size();
        die(made_.back(), exited(1));
        EXPECT_EQ(slot("h1").state, SlotState::restarting);
        EXPECT_EQ(slot("h1").pid, 0);
        if (delays[i] > 0) {
            advance(delays[i] - 0.1);
            EXPECT_EQ(made_.size(), before) << "restart " << i + 1 << " too early";
            advance(0.1);
        } else {
            advance(0);
        }
        ASSERT_EQ(made_.size(), before + 1) << "restart " << i + 1 << " not on time";
        EXPECT_EQ(slot("h1").state, SlotState::running);
    }
    EXPECT_EQ(slot("h1").starts, 5U);
    EXPECT_EQ(slot("h1").restarts.count(), 4U);
}

TEST_F(ChildrenTest, SkippedAfterMaxAttemptsUntilTenQuietMinutes) {
    opts_.max_attempts = 3;
    (void)running("h1");
    die(made_.back(), killed_by(SIGSEGV));
    advance(0);
    die(made_.back(), killed_by(SIGSEGV));
    advance(1);
    ASSERT_EQ(made_.size(), 3U);
    die(made_.back(), exited(0));
    EXPECT_EQ(slot("h1").state, SlotState::skipped);
    EXPECT_NE(log_text().find("Skipped h1 "), std::string::npos) << log_text();
    advance(60);
    advance(9 * 60 - 0.5);
    EXPECT_EQ(made_.size(), 3U); // still skipped
    advance(0.5);
    ASSERT_EQ(made_.size(), 4U);
    EXPECT_EQ(slot("h1").state, SlotState::running);
    EXPECT_EQ(slot("h1").restarts.count(), 0U); // forgotten: a fresh start
}

TEST_F(ChildrenTest, AStartThatFailsCountsAsAnAttemptAndIsRetried) {
    fail_spawns_ = 2;
    (void)children().add(peer("h1"));
    children().probed("h1", true, "");
    EXPECT_TRUE(made_.empty());
    EXPECT_EQ(slot("h1").state, SlotState::restarting);
    advance(0); // at once: fails again
    EXPECT_TRUE(made_.empty());
    EXPECT_EQ(slot("h1").restarts.count(), 2U);
    advance(0.9);
    EXPECT_TRUE(made_.empty());
    advance(0.1);
    ASSERT_EQ(made_.size(), 1U);
    EXPECT_EQ(slot("h1").starts, 1U);
}

TEST_F(ChildrenTest, WakeStartsASkippedPeerNow) {
    opts_.max_attempts = 1;
    (void)running("h1");
    die(made_.back(), exited(1));
    EXPECT_EQ(slot("h1").state, SlotState::skipped);
    EXPECT_TRUE(children().wake("h1", T::reconnect));
    EXPECT_EQ(made_.size(), 2U);
    EXPECT_EQ(slot("h1").state, SlotState::running);
    EXPECT_TRUE(children().wake("h1", T::reconnect)); // running: told
    EXPECT_EQ(types(received(made_.back())), std::vector<T>{T::reconnect});
}

TEST_F(ChildrenTest, RetryAllLeavesUpLinksAlone) {
    auto& up = running("h1");
    auto& down = running("h2");
    say(up, T::link_state, "up");
    children().retry_all();
    EXPECT_TRUE(received(up).empty());
    EXPECT_EQ(types(received(down)), std::vector<T>{T::retry});
}

TEST_F(ChildrenTest, ADrainingChildIsKilledAfterTheGrace) {
    auto& c = running("h1");
    children().retire("h1");
    EXPECT_EQ(slot("h1").state, SlotState::draining);
    EXPECT_EQ(types(received(c)), std::vector<T>{T::drain});
    advance(drain_grace + kill_margin - 0.1);
    EXPECT_TRUE(signals_.empty());
    advance(0.1);
    ASSERT_EQ(signals_.size(), 1U);
    EXPECT_EQ(signals_[0], std::make_pair(c.pid, SIGKILL));
    die(c, killed_by(SIGKILL));
    EXPECT_EQ(children().slots().count("h1"), 0U);
}

TEST_F(ChildrenTest, RetireRemovesTheSlotOnceTheChildExits) {
    auto& c = running("h1");
    children().retire("h1");
    EXPECT_EQ(children().slots().count("h1"), 1U); // until its child is done
    const auto changes = links_changed_;
    die(c, exited(0));
    EXPECT_EQ(children().slots().count("h1"), 0U);
    EXPECT_GT(links_changed_, changes);
    EXPECT_TRUE(children().pids().empty());
    advance(60);
    EXPECT_EQ(made_.size(), 1U);   // not restarted
    EXPECT_TRUE(signals_.empty()); // its kill timer went with it
}

TEST_F(ChildrenTest, RetireWithoutAChildRemovesAtOnce) {
    (void)children().add(peer("h1"));
    children().probed("h1", false, "refused");
    children().retire("h1");
    EXPECT_TRUE(children().slots().empty());
}

TEST_F(ChildrenTest, ReplaceStartsTheSuccessorOnlyAfterTheOldChildExited) {
    auto& c = running("h1", "10.0.0.1");
    children().replace("h1", peer("h1", "10.0.0.2"));
    EXPECT_EQ(types(received(c)), std::vector<T>{T::drain});
    EXPECT_EQ(probes_.size(), 1U); // not yet
    advance(1);
    EXPECT_EQ(made_.size(), 1U);
    die(c, exited(0));
    ASSERT_EQ(probes_.size(), 2U);
    EXPECT_EQ(probes_.back().ip, "10.0.0.2");
    EXPECT_EQ(slot("h1").state, SlotState::probing);
    children().probed("h1", true, "");
    ASSERT_EQ(made_.size(), 2U);
    EXPECT_EQ(made_.back().peer.ip, "10.0.0.2");
}

TEST_F(ChildrenTest, ReplaceWithoutAChildProbesTheNewAddressNow) {
    (void)children().add(peer("h1", "10.0.0.1"));
    children().probed("h1", false, "refused");
    children().replace("h1", peer("h1", "10.0.0.2"));
    ASSERT_EQ(probes_.size(), 2U);
    EXPECT_EQ(probes_.back().ip, "10.0.0.2");
    EXPECT_EQ(slot("h1").state, SlotState::probing);
}

TEST_F(ChildrenTest, ReapingAnUnknownPidIsHarmless) {
    auto& c = running("h1");
    const auto changes = links_changed_;
    children().child_exited(4242, exited(1));
    EXPECT_EQ(slot("h1").pid, c.pid);
    EXPECT_EQ(slot("h1").state, SlotState::running);
    EXPECT_EQ(children().pids().size(), 1U);
    EXPECT_EQ(links_changed_, changes);
    advance(10);
    EXPECT_EQ(made_.size(), 1U);
}

TEST_F(ChildrenTest, LinkStateAndStatusReportsReachTheOwner) {
    auto& c = running("h1");
    const auto changes = links_changed_;
    say(c, T::link_state, "up");
    EXPECT_TRUE(slot("h1").link_up);
    EXPECT_EQ(children().links_up(), 1U);
    EXPECT_EQ(links_changed_, changes + 1);

    EXPECT_EQ(children().ask_status(7), 1U);
    const auto asked = received(c);
    ASSERT_EQ(types(asked), std::vector<T>{T::status_request});
    EXPECT_EQ(ipc::decode_generation(asked[0].payload), 7U);
    EXPECT_FALSE(children().all_answered(7));
    ChildReport r;
    r.generation = 7;
    r.link = LinkState::down;
    say(c, T::status_reply, r.encode());
    EXPECT_EQ(reports_, std::vector<std::string>{"h1"});
    EXPECT_TRUE(children().all_answered(7));
    EXPECT_FALSE(slot("h1").link_up); // the report says so
}

TEST_F(ChildrenTest, StopAllDrainsEveryChildAndTellsWhenTheLastIsGone) {
    auto& a = running("h1");
    auto& b = running("h2");
    children().stop_all();
    EXPECT_EQ(types(received(a)), std::vector<T>{T::drain});
    EXPECT_EQ(types(received(b)), std::vector<T>{T::drain});
    die(a, exited(0));
    EXPECT_EQ(all_gone_, 0);
    die(b, killed_by(SIGTERM));
    EXPECT_EQ(all_gone_, 1);
    advance(60);
    EXPECT_EQ(made_.size(), 2U); // nothing restarts
    EXPECT_TRUE(signals_.empty());
}

TEST_F(ChildrenTest, StopAllKillsChildrenNotDoneInTime) {
    auto& a = running("h1");
    auto& b = running("h2");
    children().stop_all();
    advance(drain_grace + kill_margin - 0.1);
    EXPECT_TRUE(signals_.empty());
    advance(0.1);
    std::vector<std::pair<pid_t, int>> expected{{a.pid, SIGKILL}, {b.pid, SIGKILL}};
    EXPECT_EQ(signals_, expected);
}

TEST_F(ChildrenTest, KillAllNowKillsEveryChildAtOnceAndNothingLater) {
    auto& a = running("h1");
    auto& b = running("h2");
    children().stop_all();
    children().kill_all_now(); // a second TERM
    std::vector<std::pair<pid_t, int>> expected{{a.pid, SIGKILL}, {b.pid, SIGKILL}};
    EXPECT_EQ(signals_, expected);
    advance(drain_grace + kill_margin + 1);
    EXPECT_EQ(signals_, expected); // the drain's kill timer is off
}

TEST_F(ChildrenTest, AnAdoptedChildOfARemovedPeerDrains) {
    auto [parent_end, child_end] = ipc::make_pair();
    EXPECT_FALSE(children().adopt("gone", first_pid + 100, std::move(parent_end), true, nullptr));
    EXPECT_EQ(slot("gone").state, SlotState::draining);
    FakeChild c;
    c.end = std::move(child_end);
    EXPECT_EQ(types(received(c)), std::vector<T>{T::drain});
    EXPECT_FALSE(children().begin_handover("nobody"));
}

TEST_F(ChildrenTest, HandOverWaitsForTheNewChildsLinkThenTheOldExits) {
    auto& old = adopted("h1", true);
    EXPECT_TRUE(slot("h1").inherited);
    ASSERT_TRUE(children().begin_handover("h1"));
    ASSERT_EQ(made_.size(), 2U);
    auto& fresh = made_.back();
    EXPECT_TRUE(fresh.successor);
    EXPECT_EQ(slot("h1").pid, fresh.pid);
    EXPECT_TRUE(received(old).empty()); // it serves until the new link is up
    say(fresh, T::link_state, "up");
    EXPECT_EQ(types(received(old)), std::vector<T>{T::handoff});
    EXPECT_TRUE(handovers_.empty());
    die(old, exited(0));
    ASSERT_EQ(handovers_.size(), 1U);
    EXPECT_EQ(handovers_[0].first, "h1");
    EXPECT_FALSE(handovers_[0].second);
    const auto hint = received(fresh);
    ASSERT_EQ(types(hint), std::vector<T>{T::spool_hint}); // the spool lock is free
    EXPECT_EQ(hint[0].payload, "*");
    EXPECT_EQ(children().pids().size(), 1U);
    EXPECT_FALSE(slot("h1").inherited);
}

// The end of a hand-over may retire the peer at once (a reload that waited
// for the upgrade): the slot goes while its end is being told.
TEST_F(ChildrenTest, TheEndOfAHandOverMayRemoveThePeer) {
    auto& old = adopted("h1", true);
    ASSERT_TRUE(children().begin_handover("h1"));
    auto& fresh = made_.back();
    say(fresh, T::link_state, "up");
    EXPECT_EQ(types(received(old)), std::vector<T>{T::handoff});
    die(fresh, exited(1)); // the new child dies after the hand-off: no child now
    std::string told;
    on_handover_ended = [&](const std::string& id) {
        children().retire(id);
        told = id; // still readable after the slot is gone
    };
    die(old, exited(0));
    EXPECT_EQ(told, "h1");
    EXPECT_EQ(children().slots().count("h1"), 0U);
    EXPECT_TRUE(children().pids().empty());
    advance(60);
    EXPECT_EQ(made_.size(), 2U); // nothing restarts for a removed peer
}

TEST_F(ChildrenTest, AnOldChildWithoutALinkIsToldToHandOffAtOnce) {
    auto& old = adopted("h1", false);
    ASSERT_TRUE(children().begin_handover("h1"));
    EXPECT_EQ(types(received(old)), std::vector<T>{T::handoff});
    // Not gone after --request-timeout and the drain margin: killed.
    advance(opts_.request_timeout + drain_grace + kill_margin + 1.0 - 0.1);
    EXPECT_TRUE(signals_.empty());
    advance(0.1);
    ASSERT_EQ(signals_.size(), 1U);
    EXPECT_EQ(signals_[0], std::make_pair(old.pid, SIGKILL));
}

TEST_F(ChildrenTest, ANewChildThatDiesLeavesThePeerTheOldOne) {
    auto& old = adopted("h1", true);
    ASSERT_TRUE(children().begin_handover("h1"));
    auto& fresh = made_.back();
    die(fresh, exited(1));
    ASSERT_EQ(handovers_.size(), 1U);
    ASSERT_TRUE(handovers_[0].second);
    EXPECT_NE(handovers_[0].second->find("its new child " + std::to_string(fresh.pid) + " ended"),
              std::string::npos)
        << *handovers_[0].second;
    EXPECT_EQ(slot("h1").pid, old.pid);
    EXPECT_EQ(slot("h1").state, SlotState::running);
    EXPECT_TRUE(slot("h1").inherited);
    EXPECT_EQ(types(received(old)), std::vector<T>{T::reclaim});
    advance(60);
    EXPECT_EQ(made_.size(), 2U); // no restart: the old child serves
}

TEST_F(ChildrenTest, ANewChildWhoseLinkIsNotUpInTimeIsGivenUp) {
    auto& old = adopted("h1", true);
    ASSERT_TRUE(children().begin_handover("h1"));
    auto& fresh = made_.back();
    advance(handover_timeout - 0.1);
    EXPECT_TRUE(handovers_.empty());
    advance(0.1);
    ASSERT_EQ(signals_.size(), 1U);
    EXPECT_EQ(signals_[0], std::make_pair(fresh.pid, SIGKILL));
    ASSERT_EQ(handovers_.size(), 1U);
    EXPECT_EQ(handovers_[0].second, "its new child's link was not up within 30 s");
    EXPECT_EQ(slot("h1").pid, old.pid);
    die(fresh, killed_by(SIGKILL)); // reaped as a child given up on
    EXPECT_EQ(slot("h1").pid, old.pid);
    EXPECT_EQ(handovers_.size(), 1U);
}

TEST_F(ChildrenTest, AHandOverWhoseNewChildCannotStartFailsAtOnce) {
    auto& old = adopted("h1", true);
    fail_spawns_ = 1;
    ASSERT_TRUE(children().begin_handover("h1"));
    ASSERT_EQ(handovers_.size(), 1U);
    EXPECT_EQ(handovers_[0].second, "cannot start its new child");
    EXPECT_EQ(slot("h1").pid, old.pid);
    EXPECT_EQ(slot("h1").restarts.count(), 0U);
    advance(60);
    EXPECT_EQ(made_.size(), 1U); // no restart scheduled
}

} // namespace
} // namespace lonc
