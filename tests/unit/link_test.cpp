// Link against a scripted lond: the test listens on 127.0.0.1, accepts the
// link's connection and plays lond's side byte by byte (the handshake, the
// key exchange, plain and enc: replies, a malformed reply, EOF).
#include "lonc/core/cipher.hpp"
#include "lonc/core/keys.hpp"
#include "lonc/relay/link.hpp"
#include "lonc/runtime/log.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <sys/socket.h>

#include "temp_dir.hpp"

namespace lonc {
namespace {

constexpr std::string_view buildkey = "buildkey-from-lond";

int count_of(const std::string& text, std::string_view needle) {
    int n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
        ++n;
    }
    return n;
}

// The loop's clock: timers (the retry backoff) fire when a test moves it.
EventLoop::TimePoint fake_time = EventLoop::Clock::now();
EventLoop::TimePoint fake_now() {
    return fake_time;
}

struct Recorder final : LinkEvents {
    void link_up(LondLink& /*link*/) override { ++ups; }
    void link_down(LondLink& /*link*/, bool was_up) override { downs.push_back(was_up); }
    void link_reply(LondLink& /*link*/, RequestPtr req, std::string_view reply) override {
        replies.emplace_back(req->line, std::string(reply));
    }
    void link_lost(LondLink& /*link*/, RequestPtr req, Lost why) override {
        lost.emplace_back(req->line, why);
    }
    int ups = 0;
    std::vector<bool> downs;
    std::vector<std::pair<std::string, std::string>> replies; // request line, reply
    std::vector<std::pair<std::string, Lost>> lost;
};

class LinkTest : public ::testing::Test {
protected:
    LinkTest() {
        log::init({dir_ / "lonc.log", "h1", spdlog::level::info, false});
        listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
        EXPECT_EQ(::listen(listener_.get(), 8), 0);
        EXPECT_EQ(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
        cfg_.remote_id = "h1";
        cfg_.local_id = "self";
        cfg_.addr = addr.sin_addr;
        cfg_.port = ntohs(addr.sin_port);
        cfg_.retry_min = 1000; // no reconnect within a test
        cfg_.retry_max = 1000;
    }
    ~LinkTest() override {
        link_.reset();
        log::init({});
    }

    Link& link() {
        if (!link_) {
            link_.emplace(loop_, cfg_, events_, 1);
        }
        return *link_;
    }
    template <typename Done> bool pump(Done done) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!done()) {
            if (std::chrono::steady_clock::now() > until) {
                return false;
            }
            loop_.run_once(std::chrono::milliseconds(10));
        }
        return true;
    }
    // lond's side: accepts the link's connection.
    void accept_link() {
        link().connect();
        ASSERT_TRUE(pump([&] {
            lond_ = UniqueFd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK));
            return static_cast<bool>(lond_);
        }));
    }
    // The next line the link wrote to lond ("" with a failure if none).
    std::string from_link() {
        std::string line;
        const bool got = pump([&] {
            if (const auto nl = from_link_.find('\n'); nl != std::string::npos) {
                line = from_link_.substr(0, nl);
                from_link_.erase(0, nl + 1);
                return true;
            }
            char buf[4096];
            const auto n = ::recv(lond_.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                from_link_.append(buf, static_cast<std::size_t>(n));
            }
            return false;
        });
        EXPECT_TRUE(got) << "the link wrote no line";
        return line;
    }
    void to_link(std::string_view text) const {
        ASSERT_EQ(::send(lond_.get(), text.data(), text.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(text.size()));
    }
    void handshake(int ups = 1) {
        accept_link();
        ASSERT_EQ(from_link(), "init");
        to_link("challenge-1234\n");
        ASSERT_EQ(from_link(), "challenge-1234"); // echoed unchanged
        to_link("ok\n");
        ASSERT_EQ(from_link(), "ekey");
        to_link(std::string(buildkey) + "\n");
        ASSERT_TRUE(pump([&] { return events_.ups == ups; }));
        ASSERT_TRUE(link().ready());
    }
    void send(std::string line) {
        auto req = std::make_unique<Request>();
        req->line = std::move(line);
        ASSERT_TRUE(link().can_send());
        link().send(std::move(req));
    }
    // A sick lond: the link comes up (the ups-th time), lond's handler
    // dies on the request, unanswered.
    void die_unanswered(int ups, const std::string& line) {
        handshake(ups);
        send(line);
        ASSERT_EQ(from_link(), line);
        lond_.reset();
        ASSERT_TRUE(pump([&] { return events_.downs.size() == static_cast<std::size_t>(ups); }));
        EXPECT_TRUE(events_.downs.back()); // it was up
        EXPECT_FALSE(link().answered());
    }
    // n such deaths, each retry let through by the clock: the backoff is
    // long now (retry_min * 2^(n-1), jittered to half at least).
    void back_off(int n) {
        for (int i = 1; i <= n; ++i) {
            if (i > 1) {
                advance(cfg_.retry_max);
            }
            die_unanswered(i, "get:" + std::to_string(i));
        }
        ASSERT_EQ(link().failures(), static_cast<unsigned>(n));
    }

    test::TempDir dir_{"lonc-link-test"};
    // Moves the clock on and runs one round of the loop.
    void advance(double s) {
        fake_time += seconds(s);
        loop_.run_once(std::chrono::milliseconds(0));
    }
    [[nodiscard]] std::string log_text() const { return test::slurp(dir_ / "lonc.log"); }

    EventLoop loop_{&fake_now};
    LinkConfig cfg_;
    Recorder events_;
    UniqueFd listener_;
    UniqueFd lond_;
    std::string from_link_;
    std::optional<Link> link_;
};

TEST_F(LinkTest, HandshakeThenPlainAndEncryptedRequests) {
    handshake();
    EXPECT_EQ(link().state(), Link::State::ready);
    send("get:plain");
    EXPECT_EQ(from_link(), "get:plain");
    to_link("plain-answer\n");
    ASSERT_TRUE(pump([&] { return events_.replies.size() == 1; }));
    EXPECT_EQ(events_.replies[0],
              std::make_pair(std::string("get:plain"), std::string("plain-answer")));

    send("encrypt:put:secret:value");
    const auto wire = from_link();
    ASSERT_EQ(wire.rfind("enc:", 0), 0U) << wire;
    EXPECT_EQ(wire.find("secret"), std::string::npos);                // never in clear
    const LinkCipher cipher(derive_link_key("h1", "self", buildkey)); // lond's side
    std::string plain;
    ASSERT_EQ(cipher.decode(wire, plain), DecodeError::none);
    EXPECT_EQ(plain.substr(0, std::string_view("put:secret:value").size()), "put:secret:value");
    std::string answer;
    cipher.encode("secret-answer", answer);
    to_link(answer + "\n");
    ASSERT_TRUE(pump([&] { return events_.replies.size() == 2; }));
    EXPECT_EQ(events_.replies[1].second.substr(0, 13), "secret-answer");
    EXPECT_TRUE(events_.lost.empty());
    EXPECT_TRUE(events_.downs.empty());
}

TEST_F(LinkTest, RepliesPairWithPipelinedRequestsInOrder) {
    cfg_.pipeline = 3;
    handshake();
    send("get:1");
    send("get:2");
    send("get:3");
    EXPECT_FALSE(link().can_send());
    EXPECT_EQ(link().in_flight(), 3U);
    EXPECT_EQ(from_link(), "get:1");
    EXPECT_EQ(from_link(), "get:2");
    EXPECT_EQ(from_link(), "get:3");
    to_link("r1\nr2\nr3\n");
    ASSERT_TRUE(pump([&] { return events_.replies.size() == 3; }));
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(events_.replies[static_cast<std::size_t>(i)].first,
                  "get:" + std::to_string(i + 1));
        EXPECT_EQ(events_.replies[static_cast<std::size_t>(i)].second, "r" + std::to_string(i + 1));
    }
    EXPECT_EQ(link().in_flight(), 0U);
}

TEST_F(LinkTest, RefusedAtInitIsAFailedAttempt) {
    accept_link();
    ASSERT_EQ(from_link(), "init");
    to_link("refused\n");
    ASSERT_TRUE(pump([&] { return !events_.downs.empty(); }));
    EXPECT_FALSE(events_.downs[0]); // never up
    EXPECT_EQ(events_.ups, 0);
    EXPECT_NE(link().last_error().find("lond refused the connection at init"), std::string::npos);
    EXPECT_EQ(link().state(), Link::State::down);
}

TEST_F(LinkTest, AWrongChallengeAnswerFailsTheHandshake) {
    accept_link();
    ASSERT_EQ(from_link(), "init");
    to_link("challenge\n");
    ASSERT_EQ(from_link(), "challenge");
    to_link("no way\n");
    ASSERT_TRUE(pump([&] { return !events_.downs.empty(); }));
    EXPECT_EQ(events_.ups, 0);
    EXPECT_NE(link().last_error().find("init failed: lond answered 'no way'"), std::string::npos);
}

TEST_F(LinkTest, AMalformedEncReplyTearsTheLinkDownAndLosesTheRequest) {
    handshake();
    send("get:a");
    EXPECT_EQ(from_link(), "get:a");
    to_link("enc:8:zz\n");
    ASSERT_TRUE(pump([&] { return !events_.downs.empty(); }));
    EXPECT_TRUE(events_.downs[0]);
    ASSERT_EQ(events_.lost.size(), 1U);
    EXPECT_EQ(events_.lost[0], std::make_pair(std::string("get:a"), Lost::fault));
    EXPECT_TRUE(events_.replies.empty());
    EXPECT_NE(link().last_error().find("malformed enc: reply"), std::string::npos)
        << link().last_error();
}

TEST_F(LinkTest, EofHandsBackEveryRequestOnTheWire) {
    cfg_.pipeline = 2;
    handshake();
    send("get:first");
    send("get:second");
    EXPECT_EQ(from_link(), "get:first");
    EXPECT_EQ(from_link(), "get:second");
    lond_.reset(); // lond exits
    ASSERT_TRUE(pump([&] { return !events_.downs.empty(); }));
    ASSERT_EQ(events_.lost.size(), 2U);
    // lond was on the first: it is blamed; the second was a bystander.
    EXPECT_EQ(events_.lost[0], std::make_pair(std::string("get:first"), Lost::fault));
    EXPECT_EQ(events_.lost[1], std::make_pair(std::string("get:second"), Lost::bystander));
    EXPECT_EQ(link().last_error(), "lond closed the connection during up");
    EXPECT_EQ(link().in_flight(), 0U);
}

TEST_F(LinkTest, ALineWithNoRequestOutstandingIsAFault) {
    handshake();
    to_link("surprise\n");
    ASSERT_TRUE(pump([&] { return !events_.downs.empty(); }));
    EXPECT_TRUE(events_.downs[0]);
    EXPECT_NE(link().last_error().find("unexpected line from lond with no request outstanding"),
              std::string::npos);
}

TEST_F(LinkTest, StopIsOnPurposeAndDoesNotReconnect) {
    handshake();
    send("get:a");
    link().stop("shutting down");
    ASSERT_EQ(events_.lost.size(), 1U);
    EXPECT_EQ(events_.lost[0].second, Lost::closed);
    EXPECT_FALSE(link().retry_now());
    EXPECT_EQ(link().state(), Link::State::down);
}

// A lond that completes the handshake and dies on every request: each
// such link is a failed attempt (backoff, no CRITICAL line per attempt, no
// "Secure connection initialized" per attempt); the first answer ends the
// outage, and a link that answered reconnects at once when it is lost.
TEST_F(LinkTest, ALinkIsHealthyOnlyOnceItAnsweredUntilThenFailuresBackOff) {
    cfg_.retry_min = 1;
    cfg_.retry_max = 8;
    die_unanswered(1, "get:1");
    EXPECT_EQ(link().failures(), 1U);
    advance(0.45); // the first wait is retry_min, jittered to half at least
    EXPECT_EQ(link().state(), Link::State::down);
    advance(0.6);
    EXPECT_NE(link().state(), Link::State::down);
    die_unanswered(2, "get:2");
    EXPECT_EQ(link().failures(), 2U);
    advance(0.95); // now 2 s jittered: at least 1
    EXPECT_EQ(link().state(), Link::State::down);
    advance(outage_summary); // and the outage goes on for minutes
    EXPECT_NE(link().state(), Link::State::down);
    die_unanswered(3, "get:3");
    EXPECT_EQ(link().sick_attempts(), 3U);
    auto log = log_text();
    EXPECT_EQ(count_of(log, "CRITICAL: "), 1) << log;
    EXPECT_EQ(count_of(log, "CRITICAL: Connection to h1 lost (link 1): lond closed the "
                            "connection during up; lond answered no request on it: retrying "
                            "with backoff"),
              1)
        << log;
    EXPECT_EQ(count_of(log, "WARNING: h1 still failing: 3 attempts since "), 1) << log;
    EXPECT_EQ(count_of(log, "Secure connection initialized"), 1) << log;

    // lond answers again: the outage is over, and the link is healthy.
    advance(cfg_.retry_max);
    handshake(4);
    send("get:4");
    ASSERT_EQ(from_link(), "get:4");
    to_link("four\n");
    ASSERT_TRUE(pump([&] { return events_.replies.size() == 1; }));
    EXPECT_TRUE(link().answered());
    EXPECT_EQ(link().failures(), 0U);
    log = log_text();
    EXPECT_EQ(count_of(log, "INFO: h1 answers again (link 1) after 3 failed attempts since "), 1)
        << log;
    // Lost now, it reconnects at once: no time passes.
    lond_.reset();
    ASSERT_TRUE(pump([&] { return events_.downs.size() == 4; }));
    advance(0);
    EXPECT_NE(link().state(), Link::State::down);
    EXPECT_EQ(count_of(log_text(), "CRITICAL: "), 2) << log_text();
}

// USR1 (from lond's init, from lonnet on a critical con_lost, from
// loncron) retries at once, however long the backoff: only --retry-min
// after the last attempt is kept.
TEST_F(LinkTest, RetryNowConnectsAtOnceWhateverTheBackoff) {
    cfg_.retry_min = 2;
    cfg_.retry_max = 300;
    back_off(6); // the next wait: 64 s, jittered to 32 at least
    advance(cfg_.retry_min);
    ASSERT_EQ(link().state(), Link::State::down); // the backoff holds
    EXPECT_TRUE(link().retry_now());
    EXPECT_NE(link().state(), Link::State::down);
    handshake(7);

    // Sooner than --retry-min after the last attempt: that long, not the backoff.
    lond_.reset();
    ASSERT_TRUE(pump([&] { return events_.downs.size() == 7; }));
    EXPECT_EQ(link().failures(), 7U);
    EXPECT_FALSE(link().retry_now());
    EXPECT_EQ(link().state(), Link::State::down);
    advance(cfg_.retry_min);
    EXPECT_NE(link().state(), Link::State::down);
}

// lonctl reconnect resets the link: it connects at once, and its backoff
// starts again from the beginning.
TEST_F(LinkTest, ResetConnectsAtOnceAndForgetsTheBackoff) {
    cfg_.retry_min = 2;
    cfg_.retry_max = 300;
    back_off(6);
    link().reset("reconnect requested by the operator");
    EXPECT_NE(link().state(), Link::State::down); // no time passed
    EXPECT_EQ(link().failures(), 0U);
    handshake(7);
    EXPECT_EQ(events_.downs.size(), 6U); // it was down: nothing more to tear down
}

} // namespace
} // namespace lonc
