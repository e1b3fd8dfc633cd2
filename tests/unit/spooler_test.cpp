// The spooler's decisions, on a real EventLoop with a fake clock and a temp
// dir: nothing here needs root, a lond or a link. The test plays the worker:
// it takes the request the spooler enqueues and answers it.
#include "lonc/core/control_words.hpp"
#include "lonc/relay/spooler.hpp"
#include "lonc/runtime/log.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <thread>

#include "temp_dir.hpp"

namespace lonc {
namespace {

EventLoop::TimePoint fake_time = EventLoop::Clock::now();
EventLoop::TimePoint fake_now() {
    return fake_time;
}

class SpoolerTest : public ::testing::Test {
protected:
    SpoolerTest() {
        settings_.host_id = "self";
        settings_.sock_dir = dir_.path() / "sock";
        settings_.daemons = dir_.path() / "daemons";
        std::filesystem::create_directories(settings_.spool_dir());
        std::filesystem::create_directories(settings_.log_dir());
        log::init({settings_.log_file(), "h1", spdlog::level::info, false});
        opts_.spool_min_age = 0;
        opts_.spool_rescan = 3600;
        opts_.request_timeout = 10;
        opts_.retry_min = 1;
        opts_.retry_max = 100;
        opts_.spool_max_attempts = 3;
    }
    ~SpoolerTest() override { log::init({}); }

    Spooler& spooler() {
        if (!spooler_) {
            spooler_.emplace(loop_, settings_, "h1", opts_, [this](RequestPtr r) {
                ASSERT_FALSE(out_) << "two messages out at once";
                out_ = std::move(r);
            });
        }
        return *spooler_;
    }
    void spool(const std::string& name, const std::string& text) const {
        dir_.write(std::string("sock/delayed/") + name, text);
    }
    [[nodiscard]] bool exists(const std::string& name) const {
        return std::filesystem::exists(settings_.spool_dir() / name);
    }
    // Moves the clock on and runs one round of the loop (timers due fire).
    void advance(double s) {
        fake_time += seconds(s);
        loop_.run_once(std::chrono::milliseconds(0));
    }
    // The line of the message out (and takes it), or nullopt.
    std::optional<std::string> sent() {
        loop_.run_once(std::chrono::milliseconds(0));
        if (!out_) {
            return std::nullopt;
        }
        EXPECT_EQ(out_->kind, Request::Kind::spool);
        return out_->line;
    }
    RequestPtr take() { return std::move(out_); }
    [[nodiscard]] std::string perm_log() const { return test::slurp(settings_.perm_log_file()); }
    [[nodiscard]] std::string log_text() const { return test::slurp(settings_.log_file()); }

    test::TempDir dir_{"lonc-spooler-test"};
    Settings settings_;
    Options opts_;
    EventLoop loop_{&fake_now};
    std::optional<Spooler> spooler_;
    RequestPtr out_;
};

TEST_F(SpoolerTest, OldestFirstOneAtATimeAndADeliveryIsRecordedOnce) {
    spool("200.a.h1", "put:b\n");
    spool("100.a.h1", "put:a\n");
    spool("50.a.other", "put:x\n"); // another host's: not ours
    spooler().start();
    ASSERT_EQ(sent(), "put:a");
    EXPECT_EQ(spooler().pending(), 2U);
    spooler().done(take(), "ok");
    EXPECT_FALSE(exists("100.a.h1"));
    EXPECT_FALSE(exists("100.a.h1.sent")); // the record is written: no marker left
    ASSERT_EQ(sent(), "put:b");
    spooler().done(take(), "ok");
    EXPECT_EQ(sent(), std::nullopt);
    EXPECT_TRUE(exists("50.a.other"));
    const auto perm = perm_log();
    EXPECT_NE(perm.find(":S:h1:put:a:"), std::string::npos) << perm;
    EXPECT_NE(perm.find(":S:h1:put:b:"), std::string::npos) << perm;
    EXPECT_EQ(perm.find(":S:h1:put:a:"), perm.rfind(":S:h1:put:a:")) << perm;
    EXPECT_EQ(spooler().stats().delivered, 2U);
    EXPECT_EQ(spooler().pending(), 0U);
}

TEST_F(SpoolerTest, AFileIsNotOpenedBeforeMinAge) {
    opts_.spool_min_age = 5;
    spool("100.a.h1", "put:a\n");
    spooler().start();
    EXPECT_EQ(sent(), std::nullopt);
    advance(4);
    EXPECT_EQ(sent(), std::nullopt);
    advance(1.5);
    EXPECT_EQ(sent(), "put:a");
}

TEST_F(SpoolerTest, AFileRewrittenDuringDeliveryIsKeptAndGoesOutAgain) {
    spool("100.a.h1", "put:old\n");
    spooler().start();
    ASSERT_EQ(sent(), "put:old");
    spool("100.a.h1", "put:new:longer\n"); // lonnet rewrote it meanwhile
    spooler().done(take(), "ok");
    ASSERT_TRUE(exists("100.a.h1"));
    EXPECT_EQ(test::slurp(settings_.spool_dir() / "100.a.h1"), "put:new:longer\n");
    EXPECT_NE(perm_log().find(":S:h1:put:old:"), std::string::npos); // what was sent
    EXPECT_NE(log_text().find("was rewritten while it was delivered"), std::string::npos);
    ASSERT_EQ(sent(), "put:new:longer");
    spooler().done(take(), "ok");
    EXPECT_FALSE(exists("100.a.h1"));
    EXPECT_NE(perm_log().find(":S:h1:put:new:longer:"), std::string::npos);
}

TEST_F(SpoolerTest, ConLostSendsTheSameMessageAgainAtOnce) {
    spool("100.a.h1", "put:a\n");
    spooler().start();
    ASSERT_EQ(sent(), "put:a");
    spooler().done(take(), std::nullopt);
    EXPECT_TRUE(exists("100.a.h1"));
    EXPECT_EQ(sent(), "put:a");
}

TEST_F(SpoolerTest, APoisonMessageBacksOffThenIsSetAsideAfterMaxDeaths) {
    opts_.spool_max_attempts = 2;
    spool("100.a.h1", "put:poison\n");
    spool("200.a.h1", "put:fine\n");
    spooler().start();
    ASSERT_EQ(sent(), "put:poison");
    spooler().died(take(), "lond closed the connection during up");
    // Is lond healthy without it? A probe first; its answer makes the death count.
    ASSERT_EQ(sent(), "ping");
    EXPECT_EQ(log_text().find("The link to h1 died"), std::string::npos);
    spooler().peer_answered(); // as the worker does, on a connection newer than the death
    spooler().done(take(), "h1");
    // It waits retry_min * 2 = 2 s; the rest flows meanwhile.
    ASSERT_EQ(sent(), "put:fine");
    spooler().done(take(), "ok");
    advance(1.5);
    EXPECT_EQ(sent(), std::nullopt);
    advance(1);
    ASSERT_EQ(sent(), "put:poison");
    spooler().died(take(), "lond closed the connection during up");
    EXPECT_TRUE(exists("100.a.h1")); // not proven yet
    spooler().peer_answered();       // any answer proves it (a live request, the pong)
    EXPECT_FALSE(exists("100.a.h1"));
    EXPECT_TRUE(exists("100.a.h1.bad"));
    EXPECT_EQ(spooler().stats().bad, 1U);
    const auto log = log_text();
    EXPECT_NE(log.find("The link to h1 died with delayed message 100.a.h1 on it"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("CRITICAL: Delayed message 100.a.h1 was on the wire each time the link to "
                       "h1 died (2 times; last: lond closed the connection during up): set "
                       "aside as 100.a.h1.bad"),
              std::string::npos)
        << log;
    advance(100);
    EXPECT_EQ(sent(), std::nullopt);
}

// A lond that dies on every request (the probe too) is a sick peer: its
// messages wait for it, and none is ever blamed.
TEST_F(SpoolerTest, ASickPeerHasNothingSetAside) {
    opts_.spool_max_attempts = 1;
    spool("100.a.h1", "put:a\n");
    spool("200.b.h1", "put:b\n");
    spooler().start();
    for (int round = 0; round < 10; ++round) {
        ASSERT_EQ(sent(), "put:a") << round;
        spooler().died(take(), "lond closed the connection during up");
        ASSERT_EQ(sent(), "ping") << round;
        spooler().died(take(), "lond closed the connection during up");
    }
    EXPECT_TRUE(exists("100.a.h1"));
    EXPECT_TRUE(exists("200.b.h1"));
    EXPECT_EQ(spooler().stats().bad, 0U);
    // Healthy again: everything goes out.
    ASSERT_EQ(sent(), "put:a");
    spooler().done(take(), "ok");
    ASSERT_EQ(sent(), "put:b");
    spooler().done(take(), "ok");
    EXPECT_EQ(spooler().stats().delivered, 2U);
    EXPECT_EQ(log_text().find("set aside"), std::string::npos) << log_text();
}

// The probe answered on a connection no newer than the one the message
// died on (the 5th here) shows lond serves the connections it had, not
// that the message kills a new one: nothing is blamed, and the message
// goes again at once. An answer on a newer connection proves it.
TEST_F(SpoolerTest, OnlyAnAnswerOnAConnectionNewerThanTheOneThatDiedBlames) {
    opts_.spool_max_attempts = 1;
    spool("100.a.h1", "put:a\n");
    spooler().start();
    ASSERT_EQ(sent(), "put:a");
    spooler().died(take(), "lond closed the connection during up", 5);
    ASSERT_EQ(sent(), "ping");
    spooler().peer_answered(4);
    spooler().peer_answered(5);
    spooler().done(take(), "h1");
    EXPECT_TRUE(exists("100.a.h1"));
    ASSERT_EQ(sent(), "put:a");
    spooler().died(take(), "lond closed the connection during up", 6);
    ASSERT_EQ(sent(), "ping");
    spooler().peer_answered(7);
    spooler().done(take(), "h1");
    EXPECT_TRUE(exists("100.a.h1.bad"));
}

// A .bad file comes back once the peer has been healthy for a tenth of
// --spool-bad-hold and the file was set aside at least that long ago; a
// death proven on it sets it aside again at once; bad_retries times at most.
TEST_F(SpoolerTest, ASetAsideMessageIsTriedAgainAfterTheHoldABoundedNumberOfTimes) {
    opts_.spool_bad_hold = 3600;
    spool("100.a.h1.bad", "put:a\n");
    spooler().start();
    spooler().peer_answered();
    advance(3600);
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt); // set aside just now (its ctime): held
    EXPECT_TRUE(exists("100.a.h1.bad"));

    opts_.spool_bad_hold = 0;
    for (unsigned retry = 1; retry <= bad_retries; ++retry) {
        spooler().hint("*");
        ASSERT_EQ(sent(), "put:a") << retry;
        EXPECT_FALSE(exists("100.a.h1.bad"));
        spooler().died(take(), "lond closed the connection during up");
        ASSERT_EQ(sent(), "ping");
        spooler().peer_answered();
        spooler().done(take(), "h1");
        EXPECT_TRUE(exists("100.a.h1.bad")) << retry;
    }
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt); // bounded
    EXPECT_TRUE(exists("100.a.h1.bad"));
    const auto log = log_text();
    for (unsigned retry = 1; retry <= bad_retries; ++retry) {
        EXPECT_NE(log.find("is tried again (retry " + std::to_string(retry) + " of 3)"),
                  std::string::npos)
            << log;
    }
}

// The peer must have answered, with no link lost since, for a tenth of
// --spool-bad-hold before a set-aside message is tried again: a peer that
// has only just come back is not handed the message that may kill it. The
// hold is short here: the file's age is its ctime, on the wall clock.
TEST_F(SpoolerTest, ASetAsideMessageWaitsUntilThePeerHasBeenHealthyForATenthOfTheHold) {
    opts_.spool_bad_hold = 0.5; // healthy for 0.05 s of the loop's clock
    spool("100.a.h1.bad", "put:a\n");
    struct stat st {};
    const auto file = (settings_.spool_dir() / "100.a.h1.bad").string();
    ASSERT_EQ(::lstat(file.c_str(), &st), 0);
    const auto set_aside = std::chrono::system_clock::time_point(
        std::chrono::seconds(st.st_ctim.tv_sec) + std::chrono::nanoseconds(st.st_ctim.tv_nsec));
    std::this_thread::sleep_until(set_aside +
                                  std::chrono::milliseconds(600)); // older than the hold
    spooler().start();
    advance(10);
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt); // lond never answered

    spooler().peer_answered();
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt); // only just
    advance(0.03);
    spooler().link_lost(); // the wait starts again at the next answer
    advance(0.03);
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt);
    spooler().peer_answered();
    advance(0.03);
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt);
    EXPECT_TRUE(exists("100.a.h1.bad"));
    advance(0.03);
    spooler().hint("*");
    EXPECT_EQ(sent(), "put:a");
    EXPECT_FALSE(exists("100.a.h1.bad"));
}

// The bound on automatic retries is kept on the file: a child that
// restarts (or a new one after an upgrade) does not start it again.
TEST_F(SpoolerTest, TheRetryBoundHoldsForTheNextChild) {
    opts_.spool_bad_hold = 0;
    spool("100.a.h1.bad", "put:a\n");
    spooler().start();
    spooler().peer_answered();
    for (unsigned retry = 1; retry <= bad_retries; ++retry) {
        spooler().hint("*");
        ASSERT_EQ(sent(), "put:a") << retry;
        spooler().died(take(), "lond closed the connection during up");
        ASSERT_EQ(sent(), "ping");
        spooler().peer_answered();
        spooler().done(take(), "h1");
        ASSERT_TRUE(exists("100.a.h1.bad")) << retry;
    }
    char buf[8] = {};
    const auto file = (settings_.spool_dir() / "100.a.h1.bad").string();
    ASSERT_EQ(::getxattr(file.c_str(), bad_retries_attr, buf, sizeof buf - 1), 1);
    EXPECT_STREQ(buf, "3");
    spooler_.reset(); // the child is gone; the next one starts
    spooler().start();
    spooler().peer_answered();
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt);
    EXPECT_TRUE(exists("100.a.h1.bad"));
}

// A .bad file the spooler only looked at (its hold not over) and that the
// operator puts back (lonctl spool retry) is an ordinary message again:
// --spool-max-attempts counted deaths, not the one of an automatic retry.
TEST_F(SpoolerTest, AnOperatorsRetryGetsTheFullAttemptsEvenIfTheHoldWasChecked) {
    opts_.spool_bad_hold = 3600;
    opts_.spool_max_attempts = 2;
    spool("100.a.h1.bad", "put:a\n");
    spooler().start();
    spooler().peer_answered();
    advance(3600);
    spooler().hint("*");
    EXPECT_EQ(sent(), std::nullopt); // its hold is not over
    std::filesystem::rename(settings_.spool_dir() / "100.a.h1.bad",
                            settings_.spool_dir() / "100.a.h1");
    spooler().hint("*");
    ASSERT_EQ(sent(), "put:a");
    spooler().died(take(), "lond closed the connection during up");
    ASSERT_EQ(sent(), "ping");
    spooler().peer_answered();
    spooler().done(take(), "h1");
    EXPECT_TRUE(exists("100.a.h1")) << log_text(); // one death of two
    EXPECT_FALSE(exists("100.a.h1.bad"));
}

TEST_F(SpoolerTest, ATimeoutIsNotADeathButWaitsLongerEachTime) {
    opts_.spool_max_attempts = 1;
    spool("100.a.h1", "put:slow\n");
    spooler().start();
    for (const double wait : {10.0, 20.0, 40.0}) { // T, 2T, 4T
        ASSERT_EQ(sent(), "put:slow");
        spooler().timed_out(take());
        advance(wait - 0.5);
        EXPECT_EQ(sent(), std::nullopt) << wait;
        advance(1);
    }
    EXPECT_EQ(sent(), "put:slow");
    EXPECT_TRUE(exists("100.a.h1")); // never set aside for timeouts
    EXPECT_EQ(spooler().stats().bad, 0U);
}

TEST_F(SpoolerTest, ABadFileIsSetAsideOnceItStoppedChanging) {
    opts_.spool_bad_age = 60;
    spool("100.a.h1", "no newline yet");
    spooler().start();
    EXPECT_EQ(sent(), std::nullopt);
    EXPECT_TRUE(exists("100.a.h1")); // may still be being written
    const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::minutes(5);
    std::filesystem::last_write_time(settings_.spool_dir() / "100.a.h1", old);
    spooler().hint("100.a.h1");
    EXPECT_TRUE(exists("100.a.h1.bad"));
    EXPECT_EQ(spooler().stats().bad, 1U);
}

TEST_F(SpoolerTest, NoLockNoDeliveryAndTheLockIsTriedAgainAtTheNextScan) {
    opts_.spool_rescan = 30;
    // A lock file that cannot be opened (here: a directory, EISDIR; in life
    // EMFILE during a hand-over, while the other child delivers).
    const auto lock = settings_.sock_dir / ".lonc-spool" / "h1.lock";
    std::filesystem::create_directories(lock);
    spool("100.a.h1", "put:a\n");
    spooler().start();
    EXPECT_EQ(sent(), std::nullopt) << "delivered without the lock";
    spooler().hint("100.a.h1");
    EXPECT_EQ(sent(), std::nullopt) << "delivered without the lock";
    EXPECT_NE(log_text().find("delayed messages wait until it can be opened"), std::string::npos)
        << log_text();
    std::filesystem::remove(lock);
    advance(31); // the next scan takes the lock
    EXPECT_EQ(sent(), "put:a");
}

TEST_F(SpoolerTest, NothingIsSentWhileStopped) {
    spooler().start();
    spooler().stop();
    spool("100.a.h1", "put:a\n");
    spooler().hint("100.a.h1");
    EXPECT_EQ(sent(), std::nullopt);
    spooler().start();
    EXPECT_EQ(sent(), "put:a");
}

} // namespace
} // namespace lonc
