// The control socket: a real UNIX socket in a scratch directory, served by
// an EventLoop the test turns; the client is a plain blocking socket.
#include "lonc/core/control_words.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/supervisor/control.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

using namespace std::chrono_literals;

// A client of the control socket, as lonctl is one.
class Client {
public:
    explicit Client(const std::filesystem::path& path)
        : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        connected_ = fd_ && ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    [[nodiscard]] bool connected() const { return connected_; }
    bool send(std::string_view text) const {
        return ::send(fd_.get(), text.data(), text.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(text.size());
    }
    // What arrived by now, without waiting; nullopt once the server closed
    // and everything was read.
    std::optional<std::string> poll_read() {
        char buf[4096];
        for (;;) {
            const auto n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                got_.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                closed_ = true;
            }
            return got_;
        }
    }
    [[nodiscard]] bool closed() const { return closed_; }
    [[nodiscard]] const std::string& got() const { return got_; }
    void close() { fd_.reset(); }

private:
    UniqueFd fd_;
    bool connected_ = false;
    bool closed_ = false;
    std::string got_;
};

struct Request {
    ControlServer::ConnId id;
    std::string line;
};

// A ControlServer in a scratch directory; handler (if set) runs for each
// request, else requests are only recorded.
class ControlTest : public ::testing::Test {
protected:
    ControlTest()
        : server_(loop_, dir_ / ".lonc-control",
                  [this](ControlServer::ConnId id, std::string_view line) {
                      requests_.push_back({id, std::string(line)});
                      if (handler_) {
                          handler_(id, line);
                      }
                  }) {}

    [[nodiscard]] std::filesystem::path path() const { return dir_ / ".lonc-control"; }

    // Turns the loop until done() or the deadline; true if done() held.
    bool turn_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= end) {
                return false;
            }
            loop_.run_once(10ms);
        }
        return true;
    }
    // Turns the loop until c saw the server close its connection.
    bool until_closed(Client& c) {
        return turn_until([&] {
            (void)c.poll_read();
            return c.closed();
        });
    }

    test::TempDir dir_{"lonc-control-test"};
    EventLoop loop_;
    std::function<void(ControlServer::ConnId, std::string_view)> handler_;
    std::vector<Request> requests_;
    ControlServer server_;
};

TEST_F(ControlTest, OpenMakesASocketOnlyItsOwnerMayUse) {
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    struct stat st {};
    ASSERT_EQ(::lstat(path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777U, 0600U);
    EXPECT_EQ(st.st_uid, ::geteuid());
    server_.close();
    EXPECT_FALSE(std::filesystem::exists(path())) << "close() removes the socket";
}

TEST_F(ControlTest, OpenFailsWithTheReason) {
    ControlServer bad(loop_, dir_ / "no-such-dir/.lonc-control", [](auto, auto) {});
    std::string error;
    EXPECT_FALSE(bad.open(error));
    EXPECT_EQ(error, (dir_ / "no-such-dir/.lonc-control").string() + ": " + std::strerror(ENOENT));
}

TEST_F(ControlTest, ARequestIsOneLineAndTheAnswerEndsTheConnection) {
    handler_ = [this](ControlServer::ConnId id, std::string_view line) {
        server_.answer(id, "you said " + std::string(line) + "\n");
    };
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    Client c(path());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("status\n"));
    ASSERT_TRUE(until_closed(c));
    EXPECT_EQ(c.got(), "you said status\n");
    ASSERT_EQ(requests_.size(), 1U);
    EXPECT_EQ(requests_[0].line, "status");
}

TEST_F(ControlTest, AnswersMayComeLaterAndEachGoesToItsOwnConnection) {
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    Client a(path());
    Client b(path());
    ASSERT_TRUE(a.send("reconnect h1\n"));
    ASSERT_TRUE(b.send("reload\n"));
    ASSERT_TRUE(turn_until([&] { return requests_.size() == 2; }));
    // Nothing is sent before the answer: both wait.
    loop_.run_once(20ms);
    EXPECT_EQ(a.poll_read(), "");
    EXPECT_FALSE(a.closed());
    for (const auto& r : requests_) {
        server_.answer(r.id, r.line == "reload" ? "applied\nnothing changed\n" : "ok\n");
    }
    ASSERT_TRUE(until_closed(a));
    ASSERT_TRUE(until_closed(b));
    EXPECT_EQ(a.got(), "ok\n");
    EXPECT_EQ(b.got(), "applied\nnothing changed\n");
    // An answer for a connection that is gone goes nowhere.
    server_.answer(requests_[0].id, "late\n");
    loop_.run_once(0ms);
}

TEST_F(ControlTest, ALineSentInPiecesIsOneRequestAndWhatFollowsItIsIgnored) {
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    Client c(path());
    ASSERT_TRUE(c.send("recon"));
    loop_.run_once(20ms);
    EXPECT_TRUE(requests_.empty());
    ASSERT_TRUE(c.send("nect h2\nstatus\n"));
    ASSERT_TRUE(turn_until([&] { return !requests_.empty(); }));
    loop_.run_once(20ms);
    ASSERT_EQ(requests_.size(), 1U);
    EXPECT_EQ(requests_[0].line, "reconnect h2");
    server_.answer(requests_[0].id, "ok\n");
    ASSERT_TRUE(until_closed(c));
    EXPECT_EQ(c.got(), "ok\n");
}

TEST_F(ControlTest, AnEmptyLineIsARequestForTheHandlerToJudge) {
    handler_ = [this](ControlServer::ConnId id, std::string_view line) {
        server_.answer(id, line.empty() ? "error:unknown_command\n" : "ok\n");
    };
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    Client c(path());
    ASSERT_TRUE(c.send("\n"));
    ASSERT_TRUE(until_closed(c));
    EXPECT_EQ(c.got(), "error:unknown_command\n");
}

TEST_F(ControlTest, AnOverlongLineIsClosedWithoutARequest) {
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    Client c(path());
    ASSERT_TRUE(c.send(std::string(5000, 'x')));
    ASSERT_TRUE(until_closed(c));
    EXPECT_EQ(c.got(), "");
    EXPECT_TRUE(requests_.empty());
    // ... and the server goes on serving.
    Client d(path());
    ASSERT_TRUE(d.send("status\n"));
    ASSERT_TRUE(turn_until([&] { return requests_.size() == 1; }));
    server_.answer(requests_[0].id, "ok\n");
    ASSERT_TRUE(until_closed(d));
    EXPECT_EQ(d.got(), "ok\n");
}

TEST_F(ControlTest, AClientThatVanishesBeforeItsLineOrItsAnswerCostsNothing) {
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    {
        Client half(path());
        ASSERT_TRUE(half.send("stat")); // gone before the newline
    }
    Client asker(path());
    ASSERT_TRUE(asker.send("status\n"));
    ASSERT_TRUE(turn_until([&] { return requests_.size() == 1; }));
    asker.close(); // gone while its answer is owed
    for (int i = 0; i < 5; ++i) {
        loop_.run_once(10ms);
    }
    server_.answer(requests_[0].id, "too late\n"); // goes nowhere, harms nothing
    EXPECT_EQ(requests_.size(), 1U) << "a partial line is no request";
    Client next(path());
    ASSERT_TRUE(next.send("reload\n"));
    ASSERT_TRUE(turn_until([&] { return requests_.size() == 2; }));
    server_.answer(requests_[1].id, "applied\n");
    ASSERT_TRUE(until_closed(next));
    EXPECT_EQ(next.got(), "applied\n");
}

TEST_F(ControlTest, CloseEndsEveryConnection) {
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    Client waiting(path());
    ASSERT_TRUE(waiting.send("status\n"));
    ASSERT_TRUE(turn_until([&] { return requests_.size() == 1; }));
    server_.close();
    (void)waiting.poll_read();
    EXPECT_TRUE(waiting.closed());
    EXPECT_EQ(waiting.got(), "");
    Client late(path());
    EXPECT_FALSE(late.connected());
}

TEST_F(ControlTest, BeyondSixtyFourConnectionsTheNextIsClosedAtOnce) {
    std::string error;
    ASSERT_TRUE(server_.open(error)) << error;
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 64; ++i) {
        idle.push_back(std::make_unique<Client>(path()));
        ASSERT_TRUE(idle.back()->connected()) << i;
        loop_.run_once(0ms); // accepted one by one: the listen backlog is small
    }
    Client extra(path());
    ASSERT_TRUE(extra.connected());
    ASSERT_TRUE(until_closed(extra));
    for (auto& c : idle) {
        (void)c->poll_read();
        EXPECT_FALSE(c->closed());
    }
    // A connection that goes frees its place.
    idle.front()->close();
    for (int i = 0; i < 5; ++i) {
        loop_.run_once(10ms);
    }
    Client again(path());
    ASSERT_TRUE(again.send("status\n"));
    ASSERT_TRUE(turn_until([&] { return requests_.size() == 1; }));
}

// The words both ends use: every slot state reads back as itself, and
// nothing else reads as one.
TEST(ControlWords, SlotStatesReadBackAndNothingElseDoes) {
    for (const auto state : all_slot_states) {
        EXPECT_EQ(parse_slot_state(to_string(state)), state);
    }
    EXPECT_EQ(parse_slot_state("Running"), std::nullopt);
    EXPECT_EQ(parse_slot_state(""), std::nullopt);
    EXPECT_TRUE(words::shutting_down.starts_with("error:"));
}

TEST(ControlWords, EveryCommandLonctlWritesIsTheOneLoncReads) {
    using V = Command::Verb;
    for (const auto& c : {Command{V::status, {}}, Command{V::reload, {}}, Command{V::upgrade, {}},
                          Command{V::reconnect, "h1"}}) {
        const auto back = parse_command(command_line(c));
        ASSERT_TRUE(back) << command_line(c);
        EXPECT_EQ(back->verb, c.verb);
        EXPECT_EQ(back->host, c.host);
    }
    for (const char* bad : {"", "Status", "reload now", "reconnect", "reconnect ", "stop"}) {
        EXPECT_FALSE(parse_command(bad)) << bad;
    }
}

} // namespace
} // namespace lonc
