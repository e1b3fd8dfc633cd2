// PeerWorker's dispatch, requeue, timeouts and client handling, on a real
// EventLoop with a fake clock, real UNIX-socket clients in a temp dir, and
// scripted links (FakeLink) in place of lond: no root, no network.
#include "lonc/relay/peer_worker.hpp"
#include "lonc/runtime/log.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "temp_dir.hpp"

namespace lonc {
namespace {

EventLoop::TimePoint fake_time = EventLoop::Clock::now();
EventLoop::TimePoint fake_now() {
    return fake_time;
}

// A link the test drives: requests the worker sends are kept; the test
// answers them, or brings the link up and down.
class FakeLink final : public LondLink {
public:
    FakeLink(LinkEvents& events, const LinkConfig& cfg)
        : on_demand(!cfg.reconnect), events_(events), pipeline_(cfg.pipeline) {}
    ~FakeLink() override {
        if (on_destroy) {
            on_destroy(*this);
        }
    }
    FakeLink(const FakeLink&) = delete;
    FakeLink& operator=(const FakeLink&) = delete;

    void connect() override {}
    bool retry_now() override { return false; }
    void time_out(std::string_view reason) override {
        timeouts.emplace_back(reason);
        go_down(Lost::timeout);
    }
    void reset(std::string_view /*reason*/) override { go_down(Lost::closed); }
    void stop(std::string_view /*reason*/) override { go_down(Lost::closed); }
    void set_limits(const LinkConfig& cfg) override { pipeline_ = cfg.pipeline; }
    [[nodiscard]] bool ready() const noexcept override { return up_; }
    [[nodiscard]] bool can_send() const noexcept override {
        return up_ && inflight_.size() < pipeline_;
    }
    void send(RequestPtr req) override {
        sent.push_back(req->line);
        inflight_.push_back(std::move(req));
    }
    [[nodiscard]] std::size_t in_flight() const noexcept override { return inflight_.size(); }
    [[nodiscard]] const Request* oldest() const noexcept override {
        return inflight_.empty() ? nullptr : inflight_.front().get();
    }
    [[nodiscard]] std::uint16_t local_port() const noexcept override { return 0; }
    [[nodiscard]] const std::string& last_error() const noexcept override { return error_; }
    // A sick link (issue 23): its connections died before lond answered.
    [[nodiscard]] bool answered() const noexcept override { return sick == 0; }
    [[nodiscard]] unsigned sick_attempts() const noexcept override { return sick; }

    void come_up() {
        up_ = true;
        events_.link_up(*this);
    }
    void reply(std::string_view text) {
        ASSERT_FALSE(inflight_.empty());
        auto req = std::move(inflight_.front());
        inflight_.pop_front();
        sick = 0; // lond answered
        events_.link_reply(*this, std::move(req), text);
    }
    void die(std::string_view why) {
        error_ = why;
        go_down(Lost::fault);
    }
    // An attempt that fails before the link is up (lond refused, or closed
    // during the handshake).
    void refuse() {
        ASSERT_FALSE(up_);
        error_ = "lond refused the connection at init";
        events_.link_down(*this, false);
    }
    [[nodiscard]] bool up() const noexcept { return up_; }

    const bool on_demand; // made with reconnect = false
    // The worker destroyed this link (a link opened on demand, closed).
    std::function<void(FakeLink&)> on_destroy;
    unsigned sick = 0; // sick_attempts(); answered() while 0

    std::vector<std::string> sent;     // every line the worker sent, in order
    std::vector<std::string> timeouts; // reasons of time_out()

private:
    void go_down(Lost cause) {
        if (!up_) {
            return;
        }
        up_ = false;
        auto lost = std::move(inflight_);
        inflight_.clear();
        for (std::size_t i = 0; i < lost.size(); ++i) {
            events_.link_lost(*this, std::move(lost[i]),
                              cause == Lost::fault && i > 0 ? Lost::bystander : cause);
        }
        events_.link_down(*this, true);
    }

    LinkEvents& events_;
    unsigned pipeline_;
    bool up_ = false;
    std::deque<RequestPtr> inflight_;
    std::string error_;
};

class PeerWorkerTest : public ::testing::Test {
protected:
    PeerWorkerTest() {
        settings_.host_id = "self";
        settings_.sock_dir = dir_.path() / "sock";
        settings_.daemons = dir_.path() / "daemons";
        std::filesystem::create_directories(settings_.spool_dir());
        std::filesystem::create_directories(settings_.log_dir());
        log::init({settings_.log_file(), "h1", spdlog::level::info, false});
        peer_.id = "h1";
        self_.id = "self";
        opts_.handshake_pause = 1e6; // no pong in these tests
        opts_.request_timeout = 10;
        opts_.requeue_grace = 5;
        opts_.spool_rescan = 1e6;
    }
    ~PeerWorkerTest() override {
        worker_.reset();
        log::init({});
    }

    PeerWorker& worker() {
        if (!worker_) {
            worker_.emplace(loop_, settings_, peer_, self_, opts_,
                            [this](EventLoop&, const LinkConfig& cfg, LinkEvents& events,
                                   unsigned /*index*/) -> std::unique_ptr<LondLink> {
                                auto l = std::make_unique<FakeLink>(events, cfg);
                                l->on_destroy = [this](FakeLink& gone) {
                                    for (auto& p : links_) {
                                        if (p == &gone) {
                                            retired_sent_ += gone.sent.size();
                                            p = nullptr;
                                        }
                                    }
                                };
                                links_.push_back(l.get());
                                return l;
                            });
            worker_->start();
        }
        return *worker_;
    }
    // The i-th link the worker made; it must still exist.
    FakeLink& link(std::size_t i = 0) {
        (void)worker();
        auto* l = links_.at(i);
        if (l == nullptr) {
            throw std::logic_error("link " + std::to_string(i) + " was closed and destroyed");
        }
        return *l;
    }
    // Whether the i-th link exists and is up (a closed extra link is gone).
    bool link_up(std::size_t i) {
        (void)worker();
        return links_.at(i) != nullptr && links_.at(i)->up();
    }

    // Runs loop rounds until done() (or 5 s of real time: then false).
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
    void advance(double s) {
        fake_time += seconds(s);
        loop_.run_once(std::chrono::milliseconds(0));
    }

    // A client connection to lonSockDir/h1.
    UniqueFd connect() const {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const auto path = settings_.socket_path("h1").string();
        path.copy(addr.sun_path, sizeof addr.sun_path - 1);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
        return fd;
    }
    static void write_text(const UniqueFd& fd, std::string_view text) {
        ASSERT_EQ(::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(text.size()));
    }
    // A client that sent line and whose request reached the worker's queue
    // or a link (so that the next client's comes after it).
    // --link-idle-timeout 60; get:a waits on the kept link while get:b went
    // on a link opened for it, which has answered. Returns get:a's client.
    UniqueFd an_extra_link_that_answered() {
        opts_.link_idle_timeout = 60;
        link().come_up();
        auto a = request("get:a");
        auto b = request("get:b");
        link(1).come_up();
        link(1).reply("rb");
        EXPECT_EQ(reply(b), "rb");
        return a;
    }
    // --max-connections 3 and three links, each with a request (get:a on
    // link 0, get:b and get:c on the two opened for them); then a reload
    // lowers the maximum to 2. Returns the three clients.
    std::array<UniqueFd, 3> three_busy_links_then_a_maximum_of_two() {
        opts_.max_connections = 3;
        link().come_up();
        auto a = request("get:a");
        auto b = request("get:b");
        auto c = request("get:c");
        link(1).come_up();
        link(2).come_up();
        auto lower = worker().options();
        lower.max_connections = 2;
        worker().set_options(lower);
        return {std::move(a), std::move(b), std::move(c)};
    }
    UniqueFd request(std::string_view line) {
        auto fd = connect();
        const auto before = accepted_lines();
        write_text(fd, std::string(line) + "\n");
        EXPECT_TRUE(pump([&] { return accepted_lines() > before; })) << line;
        return fd;
    }
    [[nodiscard]] std::size_t accepted_lines() {
        std::size_t n = worker().queue_depth() + retired_sent_;
        for (auto* l : links_) {
            n += l != nullptr ? l->sent.size() : 0;
        }
        return n;
    }
    // The next reply line on fd (nullopt: none within 5 s, or EOF).
    std::optional<std::string> reply(const UniqueFd& fd) {
        std::string got;
        bool eof = false;
        pump([&] {
            char buf[256];
            const auto n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                got.append(buf, static_cast<std::size_t>(n));
            } else if (n == 0) {
                eof = true;
            }
            return eof || got.find('\n') != std::string::npos;
        });
        const auto nl = got.find('\n');
        if (nl == std::string::npos) {
            return std::nullopt;
        }
        return got.substr(0, nl);
    }

    // The socket path names a file of the worker's now, not the inode
    // theirs (why: what it would mean if not), and a request through it is
    // relayed.
    void expect_path_taken(const std::filesystem::path& path, ino_t theirs, const char* why) {
        struct stat st {};
        ASSERT_EQ(::stat(path.c_str(), &st), 0) << "no socket at " << path;
        EXPECT_NE(st.st_ino, theirs) << why;
        auto a = request("get:a");
        link().reply("ra");
        EXPECT_EQ(reply(a), "ra");
    }

    test::TempDir dir_{"lonc-peer-worker-test"};
    Settings settings_;
    Peer peer_;
    Peer self_;
    Options opts_;
    EventLoop loop_{&fake_now};
    std::vector<FakeLink*> links_; // null once the worker destroyed it
    std::size_t retired_sent_ = 0; // lines sent on links since destroyed
    std::optional<PeerWorker> worker_;
};

TEST_F(PeerWorkerTest, NoSocketUntilALinkIsUp) {
    (void)worker();
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_FALSE(std::filesystem::exists(settings_.socket_path("h1")));
    link().come_up();
    EXPECT_TRUE(std::filesystem::exists(settings_.socket_path("h1")));
    EXPECT_TRUE(worker().link_up());
}

TEST_F(PeerWorkerTest, DispatchesInArrivalOrderAndAnswersEachClient) {
    link().come_up();
    auto a = request("get:a");
    auto b = request("get:b");
    auto c = request("get:c");
    EXPECT_EQ(link().sent, (std::vector<std::string>{"get:a"})); // pipeline 1
    EXPECT_EQ(worker().queue_depth(), 2U);
    link().reply("ra");
    EXPECT_EQ(reply(a), "ra");
    EXPECT_EQ(link().sent, (std::vector<std::string>{"get:a", "get:b"}));
    link().reply("rb");
    link().reply("rc");
    EXPECT_EQ(reply(b), "rb");
    EXPECT_EQ(reply(c), "rc");
    EXPECT_EQ(worker().stats().requests, 3U);
    EXPECT_EQ(worker().queue_depth(), 0U);
}

TEST_F(PeerWorkerTest, PipelinesAcrossClientsButOneRequestPerClient) {
    opts_.pipeline = 3;
    opts_.max_connections = 1; // a request goes behind another only if no link can be made
    link().come_up();
    auto a = connect();
    write_text(a, "get:a1\nget:a2\n"); // one client, two lines at once
    ASSERT_TRUE(pump([&] { return link().sent.size() == 1; }));
    auto b = request("get:b");
    auto c = request("get:c");
    EXPECT_EQ(link().sent, (std::vector<std::string>{"get:a1", "get:b", "get:c"}));
    EXPECT_EQ(link().in_flight(), 3U);
    link().reply("ra1"); // a's second line goes out only once a1 is answered
    EXPECT_EQ(reply(a), "ra1");
    EXPECT_EQ(link().sent.back(), "get:a2");
    link().reply("rb");
    link().reply("rc");
    link().reply("ra2");
    EXPECT_EQ(reply(b), "rb");
    EXPECT_EQ(reply(c), "rc");
    EXPECT_EQ(reply(a), "ra2");
}

TEST_F(PeerWorkerTest, ALinkDeathAnswersWhatWasOnItAndKeepsTheQueue) {
    link().come_up();
    auto a = request("get:a");
    auto b = request("get:b");
    link().die("lond closed the connection during up");
    EXPECT_EQ(reply(a), "con_lost"); // lonnet's critical() retries or spools it
    EXPECT_EQ(worker().queue_depth(), 1U);
    link().come_up(); // back within --requeue-grace
    ASSERT_TRUE(pump([&] { return link().in_flight() == 1; }));
    EXPECT_EQ(link().sent.back(), "get:b");
    link().reply("rb");
    EXPECT_EQ(reply(b), "rb");
    EXPECT_EQ(worker().stats().con_lost, 1U);
    EXPECT_EQ(worker().stats().link_downs, 1U);
}

TEST_F(PeerWorkerTest, TheQueueGoesToTheLinkThatIsStillUp) {
    opts_.connections = 2;
    link(0).come_up();
    link(1).come_up();
    auto a = request("get:a");
    auto b = request("get:b");
    auto c = request("get:c");
    ASSERT_EQ(link(0).in_flight() + link(1).in_flight(), 2U);
    FakeLink& dying = link(0).in_flight() == 1 ? link(0) : link(1);
    FakeLink& other = &dying == &link(0) ? link(1) : link(0);
    const auto first_on_other = other.sent.front();
    dying.die("read failed");
    other.reply("r1");
    ASSERT_TRUE(pump([&] { return other.in_flight() == 1; }));
    EXPECT_EQ(other.sent.back(), "get:c");
    other.reply("r2");
    // The one on the dying link got con_lost; the others their replies.
    std::vector<std::string> got;
    for (auto* fd : {&a, &b, &c}) {
        got.push_back(reply(*fd).value_or("?"));
    }
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"con_lost", "r1", "r2"}));
    EXPECT_FALSE(first_on_other.empty());
}

TEST_F(PeerWorkerTest, NoLinkWithinRequeueGraceAnswersTheQueueConLost) {
    link().come_up();
    auto a = request("get:a");
    auto b = request("get:b");
    link().die("reset");
    EXPECT_EQ(reply(a), "con_lost");
    advance(4);
    EXPECT_EQ(worker().queue_depth(), 1U);
    advance(2);
    EXPECT_EQ(reply(b), "con_lost");
    EXPECT_EQ(worker().queue_depth(), 0U);
}

// A sick lond (handshakes, dies on the first request) with a delayed
// message: the pong queued behind it is lonc's own, and the backoff now
// outlasts --requeue-grace: no WARNING about clients per failed attempt.
TEST_F(PeerWorkerTest, TheGraceWarnsOnlyOfClientsNotOfLoncsOwnRequests) {
    opts_.handshake_pause = 0;
    opts_.spool_min_age = 0;
    dir_.write("sock/delayed/100.a.h1", "put:a\n");
    for (int attempt = 0; attempt < 3; ++attempt) {
        link().come_up();
        ASSERT_TRUE(pump([&] { return worker().queue_depth() == 0 && link().in_flight() == 1; }));
        advance(0); // the pong, queued behind the delayed message
        link().die("lond closed the connection during up");
        advance(6); // the backoff outlasts the grace
    }
    const auto log = test::slurp(settings_.log_file());
    EXPECT_EQ(log.find("No link to h1 within"), std::string::npos) << log;
    // A client's request is still worth the line.
    link().come_up();
    advance(0);
    auto a = request("get:a");
    link().die("lond closed the connection during up");
    advance(6);
    EXPECT_EQ(reply(a), "con_lost");
    EXPECT_NE(test::slurp(settings_.log_file()).find("answered 1 queued request con_lost"),
              std::string::npos);
}

// --connections 2, and lond sick for new connections only (out of memory,
// it forks no more; the handler it had serves on): a delayed message dies
// on the new connection, and the old one answers. That shows lond serves
// the connection it had, not that the message kills lond: not blamed, it
// goes again. An answer on a connection newer than the one a message
// died on does prove it.
TEST_F(PeerWorkerTest, OnlyAConnectionNewerThanTheOneThatDiedProvesAMessageGuilty) {
    opts_.connections = 2;
    opts_.spool_min_age = 0;
    opts_.spool_max_attempts = 1;
    link(0).come_up(); // the old connection
    link(1).come_up(); // the new one
    auto x = request("get:x");
    ASSERT_EQ(link(0).sent.back(), "get:x");
    dir_.write("sock/delayed/100.a.h1", "put:a\n");
    worker().spool_hint("100.a.h1");
    ASSERT_TRUE(pump([&] { return link(1).in_flight() == 1; }));
    ASSERT_EQ(link(1).sent.back(), "put:a");
    link(1).die("lond closed the connection during up");
    link(0).reply("x"); // the old connection answers
    EXPECT_EQ(reply(x), "x");
    EXPECT_FALSE(std::filesystem::exists(settings_.spool_dir() / "100.a.h1.bad"));
    ASSERT_TRUE(pump([&] { return link(0).in_flight() == 1; }));
    EXPECT_EQ(link(0).sent.back(), "ping");
    link(0).reply("h1");
    ASSERT_TRUE(pump([&] { return link(0).in_flight() == 1; }));
    EXPECT_EQ(link(0).sent.back(), "put:a");
    link(0).reply("ok");
    EXPECT_FALSE(std::filesystem::exists(settings_.spool_dir() / "100.a.h1"));
    EXPECT_FALSE(std::filesystem::exists(settings_.spool_dir() / "100.a.h1.bad"));

    // A message that does kill lond, on the old connection: the next one proves it.
    dir_.write("sock/delayed/200.b.h1", "put:poison\n");
    worker().spool_hint("200.b.h1");
    ASSERT_TRUE(pump([&] { return link(0).in_flight() == 1; }));
    ASSERT_EQ(link(0).sent.back(), "put:poison");
    link(0).die("lond closed the connection during up");
    link(1).come_up();
    ASSERT_TRUE(pump([&] { return link(1).in_flight() == 1; }));
    EXPECT_EQ(link(1).sent.back(), "ping");
    link(1).reply("h1");
    EXPECT_TRUE(std::filesystem::exists(settings_.spool_dir() / "200.b.h1.bad"));
}

TEST_F(PeerWorkerTest, RequestTimeoutByTheClock) {
    link().come_up();
    auto a = request("get:a"); // on the link
    auto b = request("get:b"); // queued behind it
    advance(9);
    EXPECT_TRUE(link().timeouts.empty());
    EXPECT_EQ(link().in_flight(), 1U);
    advance(2);
    EXPECT_EQ(reply(a), "con_lost");
    EXPECT_EQ(reply(b), "con_lost");
    ASSERT_EQ(link().timeouts.size(), 1U);
    EXPECT_EQ(worker().stats().timeouts, 2U);
    const auto log = test::slurp(settings_.log_file());
    EXPECT_NE(log.find("CRITICAL: Timeout: 1 queued request never sent within 10 s (first: get:b)"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("CRITICAL: Timeout: get:a"), std::string::npos) << log;
}

TEST_F(PeerWorkerTest, AClientThatVanishesMidRequestCostsNobodyElse) {
    link().come_up();
    auto a = request("get:a"); // on the link
    auto b = request("get:b"); // queued
    auto c = request("get:c"); // queued
    b.reset();                 // gone before its request was sent
    a.reset();                 // gone while lond is on its request
    ASSERT_TRUE(pump([&] { return worker().client_count() == 1; }));
    link().reply("ra"); // dropped: nobody to answer
    ASSERT_TRUE(pump([&] { return link().in_flight() == 1; }));
    EXPECT_EQ(link().sent, (std::vector<std::string>{"get:a", "get:c"})); // b never sent
    link().reply("rc");
    EXPECT_EQ(reply(c), "rc");
    auto d = request("get:d"); // a new client is served as usual
    link().reply("rd");
    EXPECT_EQ(reply(d), "rd");
}

TEST_F(PeerWorkerTest, LinesWhileNoLinkIsUpAreAnsweredConLost) {
    link().come_up();
    auto a = connect();
    ASSERT_TRUE(pump([&] { return worker().client_count() == 1; })); // accepted
    link().die("reset");
    write_text(a, "get:a\n");
    EXPECT_EQ(reply(a), "con_lost");
    EXPECT_TRUE(link().sent.empty());
}

// Another child's socket put at the path (a rename, as listen_unix does):
// a successor's, listening while the fd is open.
UniqueFd put_socket_at(const std::filesystem::path& path) {
    const auto tmp = path.string() + ".other";
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    tmp.copy(addr.sun_path, sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd.get(), 4), 0);
    EXPECT_EQ(::rename(tmp.c_str(), path.c_str()), 0);
    return fd;
}

// The same, then closed: what a new child that died mid-upgrade leaves behind.
void put_dead_socket_at(const std::filesystem::path& path) {
    (void)put_socket_at(path);
}

ino_t inode_at(const std::filesystem::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST_F(PeerWorkerTest, AHandOffAnswersItsClientsAndLeavesTheNewSocketAlone) {
    link().come_up();
    auto a = request("get:a");                       // on the link
    auto fresh = connect();                          // connected, no line yet
    put_dead_socket_at(settings_.socket_path("h1")); // the successor's
    struct stat theirs {};
    ASSERT_EQ(::stat(settings_.socket_path("h1").c_str(), &theirs), 0);
    worker().hand_off();
    advance(0.2);                    // past the linger: the listener is closed, the worker drains
    write_text(fresh, "get:late\n"); // a client that connected before still gets its answer
    link().reply("ra");
    EXPECT_EQ(reply(a), "ra");
    ASSERT_TRUE(pump([&] { return link().sent.size() == 2; })) << "the late line was not taken";
    EXPECT_EQ(link().sent.back(), "get:late");
    link().reply("rl");
    EXPECT_EQ(reply(fresh), "rl");
    ASSERT_TRUE(pump([&] { return loop_.stopped(); })) << "the worker did not finish";
    struct stat now {};
    ASSERT_EQ(::stat(settings_.socket_path("h1").c_str(), &now), 0) << "the path was removed";
    EXPECT_EQ(now.st_ino, theirs.st_ino) << "the path is not the successor's any more";
}

// A client that connected and says nothing holds the hand-off for a few
// seconds (lonnet writes its line at once), not for --request-timeout.
TEST_F(PeerWorkerTest, AHandOffDoesNotWaitLongForASilentClient) {
    link().come_up();
    auto silent = connect();
    ASSERT_TRUE(pump([&] { return worker().client_count() == 1; }));
    worker().hand_off();
    advance(0.2); // past the linger
    EXPECT_FALSE(loop_.stopped()) << "a client that just connected gets its chance";
    advance(6);
    EXPECT_TRUE(loop_.stopped()) << "the silent client held the hand-off";
}

// A child told to hand off whose link comes up again afterwards (it was
// reconnecting when the upgrade began, or lond restarted during it) must
// not put its socket back over its successor's.
TEST_F(PeerWorkerTest, ALinkUpAfterAHandOffOpensNoListener) {
    link().come_up();
    auto a = request("get:a");
    put_dead_socket_at(settings_.socket_path("h1")); // the successor's
    struct stat theirs {};
    ASSERT_EQ(::stat(settings_.socket_path("h1").c_str(), &theirs), 0);
    worker().hand_off();
    link().die("lond restarted");
    EXPECT_EQ(reply(a), "con_lost");
    link().come_up(); // within the linger
    struct stat now {};
    ASSERT_EQ(::stat(settings_.socket_path("h1").c_str(), &now), 0) << "the path was removed";
    EXPECT_EQ(now.st_ino, theirs.st_ino) << "the old child took the path back";
    advance(0.2); // past the linger: it drains and leaves the path alone
    ASSERT_EQ(::stat(settings_.socket_path("h1").c_str(), &now), 0) << "the path was removed";
    EXPECT_EQ(now.st_ino, theirs.st_ino) << "the old child took the path back";
}

// Issue 24: the new child has put its socket at the path while the old
// one's link was down; the old one's link comes back before it is told to
// hand off. Putting its own socket there again would leave the path empty
// once the hand-off removes it: the successor keeps the path.
TEST_F(PeerWorkerTest, ALinkUpAgainLeavesTheSocketASuccessorListensOn) {
    const auto path = settings_.socket_path("h1");
    link().come_up();
    link().die("lond restarted"); // the listener is closed, the path removed
    const auto successor = put_socket_at(path);
    const auto theirs = inode_at(path);
    link().come_up();
    EXPECT_EQ(inode_at(path), theirs) << "the old child put its socket over the successor's";
    worker().hand_off();
    advance(0.2); // past the linger: it drains, the path is left alone
    ASSERT_TRUE(pump([&] { return loop_.stopped(); })) << "the worker did not finish";
    EXPECT_EQ(inode_at(path), theirs) << "the path is not the successor's any more";
    auto client = connect();
    UniqueFd accepted(::accept4(successor.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(accepted) << "the successor does not accept any more";
}

// A child that has never listened is not a successor unless told so
// (expect_predecessor): its first listener leaves a live socket alone too.
TEST_F(PeerWorkerTest, OnlyASuccessorPutsItsSocketOverALiveOne) {
    const auto path = settings_.socket_path("h1");
    const auto other = put_socket_at(path);
    const auto theirs = inode_at(path);
    link().come_up();
    EXPECT_EQ(inode_at(path), theirs) << "a first listener replaced a live socket";
}

// A process that listens on the path and is on its way out (an orphaned
// child of an earlier lonc, draining): the path is left to it while it
// listens, and taken within a second once it stops.
TEST_F(PeerWorkerTest, APathHeldByAnotherListenerIsTakenOnceItStops) {
    const auto path = settings_.socket_path("h1");
    auto other = put_socket_at(path);
    const auto theirs = inode_at(path);
    link().come_up();
    advance(1.1);
    advance(1.1);
    EXPECT_EQ(inode_at(path), theirs) << "taken while the other process listens";
    other.reset(); // it exits; its socket file stays, dead
    advance(1.1);
    expect_path_taken(path, theirs, "the path was not taken once nobody listened");
}

TEST_F(PeerWorkerTest, ASuccessorPutsItsSocketOverItsPredecessorsLiveOne) {
    const auto path = settings_.socket_path("h1");
    const auto predecessor = put_socket_at(path);
    const auto theirs = inode_at(path);
    worker().expect_predecessor();
    link().come_up();
    expect_path_taken(path, theirs, "the successor left the predecessor's socket there");
    // Its own later listeners leave a live socket alone, as any child's.
    link().die("lond restarted");
    const auto third = put_socket_at(path);
    const auto their_third = inode_at(path);
    link().come_up();
    EXPECT_EQ(inode_at(path), their_third);
}

// The supervisor's take-back (lonctl upgrade's new child given up on):
// the old child left the new one's live socket alone, and is told to take
// the path after all.
TEST_F(PeerWorkerTest, ReclaimTakesThePathALinkUpLeftToAGivenUpSuccessor) {
    const auto path = settings_.socket_path("h1");
    link().come_up();
    link().die("lond restarted");
    const auto successor = put_socket_at(path);
    const auto theirs = inode_at(path);
    link().come_up();
    ASSERT_EQ(inode_at(path), theirs);
    worker().reclaim_socket();
    expect_path_taken(path, theirs, "the take-back left the path to the given-up child");
}

// Told to take the path back while its link is down: nothing to listen
// for yet. By the next link up the given-up child is dead, and its socket
// is replaced as any dead one.
TEST_F(PeerWorkerTest, AReclaimWhileTheLinkIsDownLeavesItToTheNextLinkUp) {
    const auto path = settings_.socket_path("h1");
    link().come_up();
    link().die("lond restarted");
    auto successor = put_socket_at(path);
    const auto theirs = inode_at(path);
    worker().reclaim_socket();
    EXPECT_EQ(inode_at(path), theirs) << "no link up: nothing to listen for yet";
    successor.reset(); // killed
    link().come_up();
    expect_path_taken(path, theirs, "the path was not taken");
}

// Handing off, a slow request keeps the worker for --request-timeout; a
// shutdown meanwhile bounds it by its own grace.
TEST_F(PeerWorkerTest, AHandOffWaitsForASlowRequestButAShutdownBoundsIt) {
    link().come_up();
    auto a = request("sleep:a");
    worker().hand_off();
    advance(0.2); // past the linger
    advance(6);   // past the old 5 s grace: still held
    EXPECT_FALSE(loop_.stopped());
    worker().drain(2);
    advance(1.5);
    EXPECT_FALSE(loop_.stopped());
    advance(1);
    EXPECT_EQ(reply(a), "con_lost");
    EXPECT_TRUE(loop_.stopped());
}

// Handing off (issue 24), the requests the old child still holds do not
// wait behind a slow one either: they get a link on demand (issue 25).
TEST_F(PeerWorkerTest, HandingOffARequestGetsALinkRatherThanWaitBehindASlowOne) {
    link().come_up();
    auto slow = request("sleep:slow");
    auto fresh = connect();                          // connected, no line yet
    put_dead_socket_at(settings_.socket_path("h1")); // the successor's
    worker().hand_off();
    advance(0.2); // past the linger: the worker drains
    const auto before = accepted_lines();
    write_text(fresh, "get:late\n");
    ASSERT_TRUE(pump([&] { return accepted_lines() > before; }));
    ASSERT_EQ(links_.size(), 2U) << "the late request waits behind the slow one";
    link(1).come_up();
    EXPECT_EQ(link(1).sent, (std::vector<std::string>{"get:late"}));
    link(1).reply("rl");
    EXPECT_EQ(reply(fresh), "rl");
    EXPECT_FALSE(loop_.stopped());
    link(0).reply("rs");
    EXPECT_EQ(reply(slow), "rs");
    ASSERT_TRUE(pump([&] { return loop_.stopped(); })) << "the worker did not finish";
    EXPECT_FALSE(link_up(1));
}

TEST_F(PeerWorkerTest, HandingOffARefusedNewLinkBacksOffToo) {
    opts_.retry_min = 2;
    link().come_up();
    auto slow = request("sleep:slow");
    auto fresh = connect();
    put_dead_socket_at(settings_.socket_path("h1"));
    worker().hand_off();
    advance(0.2);
    const auto before = accepted_lines();
    write_text(fresh, "get:late\n");
    ASSERT_TRUE(pump([&] { return accepted_lines() > before; }));
    ASSERT_EQ(links_.size(), 2U);
    link(1).refuse();
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(links_.size(), 2U) << "a refused link is followed by the backoff, not another";
    advance(2.1);
    EXPECT_EQ(links_.size(), 3U);
    EXPECT_EQ(worker().stats().link_failures, 1U);
    link(0).reply("rs");
    EXPECT_EQ(reply(slow), "rs");
    EXPECT_EQ(link(0).sent.back(), "get:late") << "on the link that is free";
    link(0).reply("rl");
    EXPECT_EQ(reply(fresh), "rl");
    ASSERT_TRUE(pump([&] { return loop_.stopped(); })) << "the worker did not finish";
    EXPECT_EQ(worker().stats().link_failures, 1U)
        << "stopping a link that was opening is no failure";
}

TEST_F(PeerWorkerTest, ReclaimPutsItsSocketBackWhenThePathNamesAnother) {
    link().come_up();
    worker().reclaim_socket(); // ours still: nothing changes
    auto a = request("get:a");
    link().reply("ra");
    EXPECT_EQ(reply(a), "ra");
    put_dead_socket_at(settings_.socket_path("h1"));
    {
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        settings_.socket_path("h1").string().copy(addr.sun_path, sizeof addr.sun_path - 1);
        // The dead socket still accepts connects into its backlog, but
        // nobody will ever answer them: that is what reclaim repairs.
        (void)::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    }
    worker().reclaim_socket();
    auto b = request("get:b");
    link().reply("rb");
    EXPECT_EQ(reply(b), "rb");
}

// ------------------------------------------------------- links on demand

TEST_F(PeerWorkerTest, ABusyLinkMakesAnotherForTheRequestThatWaits) {
    link().come_up();
    auto slow = request("get:slow");
    EXPECT_EQ(links_.size(), 1U) << "a link was idle: nothing to open";
    auto quick = request("get:quick");
    ASSERT_EQ(links_.size(), 2U) << "every link busy: one more for the waiting request";
    EXPECT_TRUE(link(1).on_demand);
    EXPECT_FALSE(link(0).on_demand);
    link(1).come_up();
    EXPECT_EQ(link(1).sent, (std::vector<std::string>{"get:quick"})) << "taken at once";
    link(1).reply("rq");
    EXPECT_EQ(reply(quick), "rq"); // while the slow one is still out
    EXPECT_EQ(link(0).in_flight(), 1U);
    link(0).reply("rs");
    EXPECT_EQ(reply(slow), "rs");
    EXPECT_EQ(worker().stats().links_opened, 1U);
    // Idle links are used before any is opened, the kept one first.
    auto again = request("get:again");
    EXPECT_EQ(link(0).sent.back(), "get:again");
    EXPECT_EQ(links_.size(), 2U);
}

TEST_F(PeerWorkerTest, NoMoreLinksThanMaxConnections) {
    opts_.max_connections = 3;
    link().come_up();
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 6; ++i) {
        clients.push_back(request("get:" + std::to_string(i)));
    }
    ASSERT_EQ(links_.size(), 3U) << "one per waiting request, up to the maximum";
    link(1).come_up();
    link(2).come_up();
    EXPECT_EQ(link(1).sent, (std::vector<std::string>{"get:1"}));
    EXPECT_EQ(link(2).sent, (std::vector<std::string>{"get:2"}));
    EXPECT_EQ(worker().queue_depth(), 3U);
    link(2).reply("r2"); // the next waiting request goes to the link that is free
    EXPECT_EQ(link(2).sent.back(), "get:3");
    EXPECT_EQ(links_.size(), 3U);
    EXPECT_EQ(worker().stats().links_opened, 2U);
    EXPECT_EQ(worker().max_links(), 3U);
}

TEST_F(PeerWorkerTest, AnIdleExtraLinkClosesTheFirstStays) {
    auto a = an_extra_link_that_answered();
    link(0).reply("ra");
    EXPECT_EQ(reply(a), "ra");
    advance(59);
    EXPECT_TRUE(link_up(1));
    auto c = request("get:c"); // on the kept link: the extra stays idle
    link(0).reply("rc");
    EXPECT_EQ(reply(c), "rc");
    advance(2);
    EXPECT_FALSE(link_up(1)) << "idle for --link-idle-timeout: closed";
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(worker().links().size(), 1U);
    EXPECT_EQ(worker().stats().links_closed, 1U);
    EXPECT_EQ(worker().stats().link_downs, 0U) << "closing an idle link is not a link going down";
    advance(600);
    EXPECT_TRUE(link_up(0)) << "the first link is kept however quiet the host";
    EXPECT_EQ(worker().links().size(), 1U);
    auto d = request("get:d");
    EXPECT_EQ(link(0).sent.back(), "get:d");
}

TEST_F(PeerWorkerTest, TheLastLinkUpIsNotClosedAsIdle) {
    auto a = an_extra_link_that_answered();
    link(0).die("lond closed the connection"); // the kept link reconnects, with backoff
    EXPECT_EQ(reply(a), "con_lost");
    advance(61);
    EXPECT_TRUE(link_up(1)) << "the one link up stays, idle or not";
    auto c = request("get:c");
    EXPECT_EQ(link(1).sent.back(), "get:c");
    link(1).reply("rc");
    EXPECT_EQ(reply(c), "rc");
    link(0).come_up(); // the kept link is back: the idle extra goes
    advance(61);
    EXPECT_FALSE(link_up(1));
    EXPECT_TRUE(link_up(0));
}

TEST_F(PeerWorkerTest, ARefusedNewLinkBacksOffAndTheRequestTakesTheLinkItHas) {
    opts_.retry_min = 2;
    opts_.retry_max = 100;
    link().come_up();
    auto a = request("get:a");
    auto b = request("get:b");
    ASSERT_EQ(links_.size(), 2U);
    link(1).refuse();
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(worker().links().size(), 1U) << "a failed extra link is not retried";
    EXPECT_EQ(links_.size(), 2U) << "nor another opened at once";
    advance(1.9);
    EXPECT_EQ(links_.size(), 2U);
    advance(0.2); // the backoff is over and b still waits: one more try
    ASSERT_EQ(links_.size(), 3U);
    link(2).refuse();
    advance(3.9); // twice as long now
    EXPECT_EQ(links_.size(), 3U);
    link(0).reply("ra"); // b goes on the link there is
    EXPECT_EQ(reply(a), "ra");
    EXPECT_EQ(link(0).sent.back(), "get:b");
    link(0).reply("rb");
    EXPECT_EQ(reply(b), "rb");
    advance(10);
    EXPECT_EQ(links_.size(), 3U) << "nothing waits: nothing opened";
    EXPECT_EQ(worker().stats().links_opened, 2U);
    const auto log = test::slurp(settings_.log_file());
    EXPECT_NE(log.find("Link 2 to h1 (opened on demand) failed: lond refused the connection at "
                       "init; going on with the 1 link up, no new link for 2.0 s"),
              std::string::npos)
        << log;
}

TEST_F(PeerWorkerTest, AfterAFailedNewLinkOnlyOneIsTriedAtATime) {
    opts_.request_timeout = 100;
    opts_.retry_min = 2;
    opts_.retry_max = 100;
    link().come_up();
    auto a = request("get:a");
    std::vector<UniqueFd> waiting;
    for (int i = 0; i < 3; ++i) {
        waiting.push_back(request("get:w" + std::to_string(i)));
    }
    ASSERT_EQ(links_.size(), 4U) << "one per waiting request";
    for (std::size_t i = 1; i < 4; ++i) {
        link(i).refuse(); // a host that takes no new link
    }
    advance(8.1); // the backoff (2, 4, 8 s) is over; three requests still wait
    EXPECT_EQ(links_.size(), 5U) << "one attempt, not one per waiting request";
    link(4).refuse();
    advance(16.1);
    EXPECT_EQ(links_.size(), 6U);
    link(5).come_up(); // the host takes new links again: as many as wait
    link(5).reply("r0");
    EXPECT_EQ(reply(waiting[0]), "r0");
    EXPECT_EQ(links_.size(), 7U) << "one more for the request still waiting behind busy links";
}

TEST_F(PeerWorkerTest, ASickPeerGetsNoLinkOnDemand) {
    opts_.request_timeout = 100;
    link().sick = 2; // its last connections died before lond answered (issue 23)
    link().come_up();
    auto a = request("get:a");
    auto b = request("get:b");
    advance(60);
    EXPECT_EQ(links_.size(), 1U) << "no more handshakes for a sick peer than its one link's";
    link(0).reply("ra"); // lond answers: healthy again
    EXPECT_EQ(reply(a), "ra");
    EXPECT_EQ(link(0).sent.back(), "get:b");
    auto c = request("get:c");
    EXPECT_EQ(links_.size(), 2U) << "a busy healthy link makes another";
}

TEST_F(PeerWorkerTest, ALinkOpenedOnDemandCarriesRequestsAtOnceAndSendsNoPong) {
    opts_.handshake_pause = 5;
    link().come_up(); // its pong is due at 5 s
    auto a = request("get:a");
    auto b = request("get:b");
    advance(3);
    link(1).come_up();
    EXPECT_EQ(link(1).sent, (std::vector<std::string>{"get:b"})) << "no pause before requests";
    link(1).reply("rb");
    EXPECT_EQ(reply(b), "rb");
    advance(2.1); // the kept link's pong, on the idle link; not moved to 8 s by the extra one
    EXPECT_EQ(link(1).sent, (std::vector<std::string>{"get:b", "pong"}));
    link(1).reply("h1:self");
    advance(4);
    EXPECT_EQ(std::count(link(1).sent.begin(), link(1).sent.end(), "pong"), 1)
        << "one pong: the extra link asked for none";
    EXPECT_EQ(links_.size(), 2U);
    link(0).reply("ra");
    EXPECT_EQ(reply(a), "ra");
}

TEST_F(PeerWorkerTest, ThePongOpensNoLink) {
    opts_.handshake_pause = 5;
    link().come_up();
    auto a = request("get:a");
    advance(5.1); // pong due, the only link busy: it waits
    EXPECT_EQ(links_.size(), 1U);
    link(0).reply("ra");
    EXPECT_EQ(link(0).sent.back(), "pong");
}

TEST_F(PeerWorkerTest, DelayedMessagesGoOneAtATimeOnWhicheverLinkIsFree) {
    opts_.spool_min_age = 0;
    link().come_up();
    auto slow = request("get:slow"); // the kept link is busy
    dir_.write("sock/delayed/100.a.h1", "put:a\n");
    dir_.write("sock/delayed/200.a.h1", "put:b\n");
    worker().spool_hint("*");
    for (int i = 0; i < 5; ++i) {
        loop_.run_once(std::chrono::milliseconds(0));
    }
    EXPECT_EQ(links_.size(), 1U) << "a delayed message opens no link: it takes the next free one";
    auto quick = request("get:quick"); // a client does
    ASSERT_EQ(links_.size(), 2U);
    link(1).come_up();
    EXPECT_EQ(link(1).sent, (std::vector<std::string>{"put:a"})) << "the oldest waiting first";
    ASSERT_EQ(links_.size(), 3U) << "the client still waits: one more link";
    link(2).come_up();
    EXPECT_EQ(link(2).sent, (std::vector<std::string>{"get:quick"}));
    link(2).reply("rq");
    EXPECT_EQ(reply(quick), "rq");
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(link(2).sent.size(), 1U) << "put:b waits for put:a's answer, on a free link or not";
    link(1).reply("ok");
    ASSERT_TRUE(pump([&] { return link(1).sent.size() + link(2).sent.size() == 3; }));
    EXPECT_EQ(link(1).sent.back(), "put:b") << "the first free link";
    link(1).reply("ok");
    ASSERT_TRUE(pump([&] { return worker().spooler().stats().delivered == 2; }));
    link(0).reply("rs");
    EXPECT_EQ(reply(slow), "rs");
}

TEST_F(PeerWorkerTest, AReloadAppliesALowerMaximumWithoutDroppingABusyLink) {
    auto [a, b, c] = three_busy_links_then_a_maximum_of_two();
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_TRUE(link_up(1));
    EXPECT_TRUE(link_up(2)) << "a link with a request on it is not dropped";
    link(2).reply("rc");
    EXPECT_EQ(reply(c), "rc");
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_FALSE(link_up(2)) << "over the new maximum, closed once idle";
    EXPECT_TRUE(link_up(1)) << "within it: kept until idle for --link-idle-timeout";
    link(1).reply("rb");
    link(0).reply("ra");
    EXPECT_EQ(reply(b), "rb");
    EXPECT_EQ(reply(a), "ra");
    auto higher = worker().options();
    higher.max_connections = 8;
    worker().set_options(higher);
    EXPECT_EQ(worker().max_links(), 8U);
}

TEST_F(PeerWorkerTest, ALowerMaximumHoldsUnderLoad) {
    auto [a, b, c] = three_busy_links_then_a_maximum_of_two();
    auto d = request("get:d"); // waits: every link busy, none may be opened
    EXPECT_EQ(links_.size(), 3U);
    link(2).reply("rc");
    EXPECT_EQ(reply(c), "rc");
    EXPECT_EQ(link(2).sent.back(), "get:c") << "a link over the maximum takes no more requests";
    loop_.run_once(std::chrono::milliseconds(0));
    EXPECT_FALSE(link_up(2)) << "closed once idle";
    link(1).reply("rb");
    EXPECT_EQ(reply(b), "rb");
    EXPECT_EQ(link(1).sent.back(), "get:d");
    link(1).reply("rd");
    EXPECT_EQ(reply(d), "rd");
    link(0).reply("ra");
    EXPECT_EQ(reply(a), "ra");
}

TEST(ClientState, TransitionsAreTheDrawnOnes) {
    using S = Client::State;
    EXPECT_TRUE(Client::may_enter(S::closed, S::idle));
    EXPECT_TRUE(Client::may_enter(S::idle, S::waiting));
    EXPECT_TRUE(Client::may_enter(S::idle, S::replying));
    EXPECT_TRUE(Client::may_enter(S::waiting, S::idle));
    EXPECT_TRUE(Client::may_enter(S::replying, S::idle));
    EXPECT_TRUE(Client::may_enter(S::waiting, S::closed));
    EXPECT_FALSE(Client::may_enter(S::waiting, S::replying)); // answered: idle first
    EXPECT_FALSE(Client::may_enter(S::replying, S::waiting));
    EXPECT_FALSE(Client::may_enter(S::closed, S::waiting));
    EXPECT_FALSE(Client::may_enter(S::closed, S::closed));
}

} // namespace
} // namespace lonc
