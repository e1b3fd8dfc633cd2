// The relay (one child per peer): real lonc, real lond-sim peers, real bytes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <future>
#include <map>
#include <sys/socket.h>
#include <thread>

#include "cluster.hpp"
#include "vectors.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

TEST(Relay, EveryPeerAnswersPlainAndEncryptedRequests) {
    Cluster c({.hosts = 3});
    for (int h = 0; h < 3; ++h) {
        const auto token = unique_token("v");
        EXPECT_EQ(c.request(h, "ping"), c.id(h));
        EXPECT_EQ(c.request(h, "auth:dom:user:pw"), "refused"); // lond wants it encrypted
        EXPECT_EQ(c.request(h, "encrypt:auth:dom:user:pw"), "authorized");
        EXPECT_EQ(c.request(h, "put:dom:user:ns:key=" + token), "ok");
        EXPECT_EQ(c.request(h, "eget:dom:user:ns:key"), token); // the reply came enc: on the wire
        EXPECT_EQ(c.request(h, "no_such_command:x"), "unknown_cmd");
    }
    // lond-sim saw the eget and auth requests the way lonc sent them.
    bool saw_enc = false;
    for (const auto& row : c.sim_requests(1)) {
        if (row.size() == 3 && row[1].rfind("enc:", 0) == 0) {
            saw_enc = true;
            EXPECT_EQ(row[2], "auth:dom:user:pw");
        }
    }
    EXPECT_TRUE(saw_enc);
}

TEST(Relay, LargeEncryptedEchoAndLargeReply) {
    Cluster c({.hosts = 2});
    std::string big(5000, 'x');
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>('a' + i % 26);
    }
    EXPECT_EQ(c.request(1, "encrypt:echo:" + big), big);
    auto reply = c.request(1, "bytes:2000000", 20s);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->size(), 2000000U);
    EXPECT_EQ(c.request(1, "ping"), c.id(1)); // the link is still in step
}

void concurrent_clients(Cluster& c, int host, bool persistent, int clients, int per_client) {
    std::atomic<int> good{0};
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
        threads.emplace_back([&, t] {
            std::optional<LineClient> conn;
            for (int i = 0; i < per_client; ++i) {
                const auto token = unique_token("c" + std::to_string(t) + "-");
                std::optional<std::string> reply;
                if (persistent) {
                    if (!conn) {
                        conn = c.client(host);
                    }
                    reply = conn ? conn->request("echo:" + token) : std::nullopt;
                } else {
                    reply = c.request(host, "echo:" + token);
                }
                (reply == token ? good : bad)++;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(good.load(), clients * per_client);
}

TEST(Relay, FiftyConcurrentClientsGetTheirOwnRepliesLonnetPattern) {
    Cluster c({.hosts = 2});
    concurrent_clients(c, 1, false, 50, 20);
}

TEST(Relay, FiftyConcurrentClientsGetTheirOwnRepliesPersistent) {
    Cluster c({.hosts = 2});
    concurrent_clients(c, 1, true, 50, 40);
}

TEST(Relay, PipelineFourGivesEveryClientItsOwnReply) {
    Cluster c({.hosts = 2, .lonc_args = {"--pipeline", "4"}});
    concurrent_clients(c, 1, true, 32, 50);
    concurrent_clients(c, 1, false, 16, 10);
}

TEST(Relay, ManyLinesOnOneConnectionAreAnsweredInOrder) {
    Cluster c({.hosts = 2, .lonc_args = {"--connections", "2", "--pipeline", "4"}});
    auto conn = c.client(1);
    ASSERT_TRUE(conn);
    std::string batch;
    for (int i = 0; i < 200; ++i) {
        batch += "echo:line" + std::to_string(i) + "\n";
    }
    ASSERT_TRUE(conn->send(batch));
    for (int i = 0; i < 200; ++i) {
        ASSERT_EQ(conn->read_line(), "line" + std::to_string(i));
    }
}

// ------------------------------------------------------ head of line

TEST(HeadOfLine, HalfLineStallDelaysNobody) {
    Cluster c({.hosts = 2});
    auto staller = c.client(1);
    ASSERT_TRUE(staller);
    ASSERT_TRUE(staller->send("echo:never-finished")); // no newline, then silence
    const auto t0 = Clock::now();
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(c.request(1, "echo:ok" + std::to_string(i)), "ok" + std::to_string(i));
    }
    EXPECT_LT(since(t0), 5.0); // a stall would be forever; 5 s leaves room for a busy machine
    ASSERT_TRUE(staller->send("\n"));
    EXPECT_EQ(staller->read_line(), "never-finished");
}

TEST(HeadOfLine, ClientThatStopsReadingDelaysNobody) {
    Cluster c({.hosts = 2});
    auto hog = c.client(1);
    ASSERT_TRUE(hog);
    std::string batch;
    for (int i = 0; i < 50; ++i) {
        batch += "bytes:200000\n"; // 10 MB of replies it will not read
    }
    ASSERT_TRUE(hog->send(batch));
    ASSERT_TRUE(c.wait_received(1, "bytes:200000")); // its replies are coming
    const auto t0 = Clock::now();
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(c.request(1, "echo:x" + std::to_string(i)), "x" + std::to_string(i));
    }
    EXPECT_LT(since(t0), 5.0);
    // It still gets all of its replies, in order, once it reads.
    for (int i = 0; i < 50; ++i) {
        auto r = hog->read_line(10s);
        ASSERT_TRUE(r.has_value());
        ASSERT_EQ(r->size(), 200000U);
    }
}

TEST(HeadOfLine, SlowRequestOnOnePeerDoesNotDelayAnother) {
    Cluster c({.hosts = 3});
    auto slow = std::async(std::launch::async, [&] { return c.request(1, "sleep:4000:slow"); });
    ASSERT_TRUE(c.wait_received(1, "sleep:4000:slow"));
    const auto t0 = Clock::now();
    EXPECT_EQ(c.request(2, "ping"), c.id(2));
    EXPECT_LT(since(t0), 2.5); // behind the slow one it would take about 4 s
    EXPECT_EQ(slow.get(), "slow");
}

TEST(HeadOfLine, SecondConnectionServesOthersWhileOneRequestIsSlow) {
    Cluster c({.hosts = 2, .lonc_args = {"--connections", "2"}});
    auto slow = std::async(std::launch::async, [&] { return c.request(1, "sleep:4000:slow"); });
    ASSERT_TRUE(c.wait_received(1, "sleep:4000:slow"));
    const auto t0 = Clock::now();
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(c.request(1, "echo:quick" + std::to_string(i)), "quick" + std::to_string(i));
    }
    EXPECT_LT(since(t0), 2.5); // behind the slow one it would take about 4 s
    EXPECT_EQ(slow.get(), "slow");
}

// With lonc's own defaults (one link kept, more opened on demand, the 5 s
// handshake pause, no test timings): a quick request to a host is answered
// while a slow one to the same host is at lond, on a link opened for it, and
// soon. Behind the slow one it would come after it; behind a handshake pause
// on the new link, 5 s later; half the slow request's length tells both
// apart from a slow machine (issue 25).
TEST(HeadOfLine, ByDefaultAQuickRequestDoesNotWaitForASlowOne) {
    Cluster c({.hosts = 2, .test_defaults = false});
    constexpr double slow_s = 8;
    const std::string slow_line = "sleep:8000:slow";
    auto slow = c.client(1);
    ASSERT_TRUE(slow);
    ASSERT_TRUE(slow->send_line(slow_line));
    ASSERT_TRUE(c.wait_received(1, slow_line)) << c.log(); // lond is on it
    const auto t0 = Clock::now();
    EXPECT_EQ(c.request(1, "echo:quick", 20s), "quick");
    const double quick_took = since(t0);
    // The slow one is still outstanding: no reply for it yet.
    char byte = 0;
    EXPECT_EQ(::recv(slow->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT), -1)
        << "the slow reply came before the quick one";
    EXPECT_TRUE(slow->pending().empty());
    EXPECT_LT(quick_took, slow_s / 2) << "the quick request waited";
    const auto status = json::parse(lonctl(c, {"status", "--json"}).out, nullptr, false);
    bool found = false;
    for (const auto& p : status["peers"]) {
        if (p["id"] == c.id(1)) {
            found = true;
            EXPECT_EQ(p.value("links_opened", 0), 1) << p.dump();
            EXPECT_EQ(p.value("links_total", 0), 2) << p.dump();
            EXPECT_EQ(p.value("links_max", 0), 8) << p.dump();
        }
    }
    EXPECT_TRUE(found) << status.dump();
    EXPECT_EQ(slow->read_line(20s), "slow");
}

// ---------------------------------------------------------- timeouts

TEST(Timeouts, TimedOutRequestResetsTheLinkAndTheLateReplyIsNeverDelivered) {
    Cluster c({.hosts = 2, .lonc_args = {"--request-timeout", "1"}});
    auto conn = c.client(1);
    ASSERT_TRUE(conn);
    const auto t0 = Clock::now();
    EXPECT_EQ(conn->request("sleep:4000:late-reply"), "con_lost");
    EXPECT_GT(since(t0), 0.9);
    EXPECT_LT(since(t0), 3.5); // not the 4 s of the late reply
    // The next request gets its own reply, never the late one.
    ASSERT_TRUE(c.wait_socket(1));
    std::optional<std::string> next;
    ASSERT_TRUE(wait_until(
        [&] {
            next = c.request(1, "echo:fresh");
            return next == "fresh";
        },
        5s))
        << (next ? *next : "no reply");
    // Past the moment the late reply would come.
    std::this_thread::sleep_until(t0 + 4500ms);
    EXPECT_EQ(c.request(1, "echo:fresh2"), "fresh2");
    EXPECT_TRUE(c.log_contains(R"(\[h1\] \[[^\]]*\]: CRITICAL: Timeout: sleep:4000:late-reply)"));
}

TEST(Timeouts, QueuedRequestThatExpiresIsNeverSent) {
    // The link dies with a request queued behind a slow one; no new link
    // comes within the request timeout (shorter than the requeue grace).
    // One link: none is opened on demand for the queued request.
    Cluster c({.hosts = 2,
               .lonc_args = {"--request-timeout", "1", "--requeue-grace", "5", "--max-connections",
                             "1"}});
    auto slow = std::async(std::launch::async, [&] { return c.request(1, "sleep:3000:slow"); });
    ASSERT_TRUE(c.wait_received(1, "sleep:3000:slow"));
    const auto t0 = Clock::now();
    auto queued =
        std::async(std::launch::async, [&] { return c.request(1, "echo:queued-never-sent"); });
    ASSERT_TRUE(c.wait_status_at_least(1, "queue", 1));
    c.kill_sim(1);
    EXPECT_EQ(slow.get(), "con_lost");
    EXPECT_EQ(queued.get(), "con_lost");
    EXPECT_GT(since(t0), 0.9);
    EXPECT_LT(since(t0), 4.0); // the request timeout (1 s), not the requeue grace (5 s)
    c.start_sim(1);
    ASSERT_TRUE(wait_until([&] { return c.request(1, "ping") == c.id(1); }, 5s));
    for (const auto& row : c.sim_requests(1)) {
        ASSERT_GE(row.size(), 2U);
        EXPECT_NE(row[1], "echo:queued-never-sent");
    }
    EXPECT_TRUE(c.log_contains("Timeout: 1 queued request never sent"));
}

// ---------------------------------------------------------- link loss

TEST(LinkLoss, PeerKilledMeansConLostAtOnceAndNoSocket) {
    Cluster c({.hosts = 2});
    auto idle = c.client(1);
    ASSERT_TRUE(idle);
    ASSERT_EQ(idle->request("ping"), c.id(1));
    auto inflight = std::async(std::launch::async, [&] { return c.request(1, "sleep:5000"); });
    ASSERT_TRUE(c.wait_received(1, "sleep:5000"));
    const auto t0 = Clock::now();
    c.kill_sim(1);
    EXPECT_EQ(inflight.get(), "con_lost");
    EXPECT_LT(since(t0), 3.0); // not the 5 s of the reply
    EXPECT_TRUE(c.wait_no_socket(1));
    // A line on a connection that is still open: con_lost at once.
    const auto t1 = Clock::now();
    EXPECT_EQ(idle->request("ping"), "con_lost");
    EXPECT_LT(since(t1), 2.0);                      // not the requeue grace (5 s)
    EXPECT_FALSE(c.request(1, "ping").has_value()); // no socket: lonnet fails fast
    // The other peer is untouched.
    EXPECT_EQ(c.request(0, "ping"), c.id(0));

    // Peer back: the socket is back soon after the reconnect succeeds.
    c.start_sim(1);
    const auto t2 = Clock::now();
    ASSERT_TRUE(c.wait_socket(1, 5s));
    EXPECT_LT(since(t2), 3.0); // --retry-max 0.5 in tests
    EXPECT_EQ(c.request(1, "ping"), c.id(1));
    EXPECT_EQ(idle->request("ping"), c.id(1)); // the old connection works again too
}

TEST(LinkLoss, PeerClosingMidRequestGivesConLostAndRecovers) {
    Cluster c({.hosts = 2});
    EXPECT_EQ(c.request(1, "close"), "con_lost");
    ASSERT_TRUE(wait_until([&] { return c.request(1, "ping") == c.id(1); }, 5s));
}

TEST(LinkLoss, BrokenEncReplyResetsTheLink) {
    Cluster c({.hosts = 2});
    EXPECT_EQ(c.request(1, "badenc"), "con_lost");
    EXPECT_TRUE(c.wait_log("malformed enc: reply"));
    ASSERT_TRUE(wait_until([&] { return c.request(1, "ping") == c.id(1); }, 5s));
}

TEST(LinkLoss, HandshakeRefusedIsLoggedWithTheStep) {
    Cluster c({.hosts = 2, .start_sims = false, .start_lonc = false});
    c.start_sim(0);
    c.start_sim(1, {"--refuse-handshake"});
    c.start_lonc();
    ASSERT_TRUE(c.wait_socket(0));
    EXPECT_TRUE(c.wait_log(
        R"(\[h1\] .*WARNING: Couldn't connect to h1 \(link 1, at challenge\): init failed: lond answered 'refused')"));
    EXPECT_TRUE(c.wait_log(R"(WARNING: h1 still down after 4 attempts)"));
    EXPECT_FALSE(std::filesystem::exists(c.socket(1)));
}

// ------------------------------------------------------- wire vectors

TEST(Wire, EncryptedRequestsOnTheWireEqualTheVectors) {
    // Rows of enc.tsv whose key comes from a keys.tsv row: run lonc as the
    // row's local host and lond-sim as its remote host with its buildkey.
    std::map<std::string, std::vector<std::string>> by_key;
    for (const auto& row : load_tsv("keys.tsv")) {
        if (row[0] != row[1]) {
            by_key.emplace(row[3], row);
        }
    }
    int checked = 0;
    for (const auto& e : load_tsv("enc.tsv")) {
        const auto it = by_key.find(e[0]);
        if (it == by_key.end()) {
            continue;
        }
        const auto& k = it->second;
        const auto plain = unhex(e[1]);
        Cluster c({.hosts = 2, .ids = {k[1], k[0]}, .sim_args = {"--buildkey", k[2]}});
        const auto reply = c.request(1, "encrypt:" + plain);
        ASSERT_TRUE(reply.has_value());
        bool found = false;
        for (const auto& row : c.sim_requests(1)) {
            if (row.size() >= 2 && row[1] == e[2]) {
                found = true;
            }
        }
        EXPECT_TRUE(found) << "lond-sim did not receive " << e[2];
        ++checked;
    }
    EXPECT_GE(checked, 8);
}

// ------------------------------------------------- client misbehaviour

// lonc answers only what lonnet understands: con_lost, which makes
// lonnet's critical() retry and spool the request.
TEST(Clients, OverlongLineGetsConLostAndIsClosed) {
    Cluster c({.hosts = 2, .lonc_args = {"--max-line", "100"}});
    auto a = c.client(1);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->request("echo:" + std::string(200, 'y')), "con_lost");
    EXPECT_TRUE(a->wait_closed(10s));
    auto b = c.client(1);
    ASSERT_TRUE(b);
    ASSERT_TRUE(b->send(std::string(5000, 'z'))); // no newline at all
    EXPECT_EQ(b->read_line(), "con_lost");
    EXPECT_TRUE(b->wait_closed(10s));
    EXPECT_EQ(c.request(1, "ping"), c.id(1));
    EXPECT_TRUE(c.log_contains("longer than --max-line"));
}

TEST(Clients, IdleClientIsClosed) {
    Cluster c({.hosts = 2, .lonc_args = {"--client-idle-timeout", "0.5"}});
    auto idle = c.client(1);
    ASSERT_TRUE(idle);
    EXPECT_EQ(idle->request("ping"), c.id(1));
    EXPECT_TRUE(idle->wait_closed(3s));
    EXPECT_TRUE(c.wait_log("Closed 1 idle client connection"));
}

TEST(Clients, FullQueueAnswersConLost) {
    // One link, so that requests queue behind the slow one.
    Cluster c({.hosts = 2, .lonc_args = {"--max-queue", "2", "--max-connections", "1"}});
    auto first = std::async(std::launch::async, [&] { return c.request(1, "sleep:5000:a"); });
    ASSERT_TRUE(c.wait_received(1, "sleep:5000:a"));
    auto second = std::async(std::launch::async, [&] { return c.request(1, "echo:b"); });
    auto third = std::async(std::launch::async, [&] { return c.request(1, "echo:c"); });
    ASSERT_TRUE(c.wait_status_at_least(1, "queue", 2));
    EXPECT_EQ(c.request(1, "echo:d"), "con_lost");
    EXPECT_EQ(first.get(), "a");
    EXPECT_EQ(second.get(), "b");
    EXPECT_EQ(third.get(), "c");
    EXPECT_TRUE(c.log_contains("Queue full"));
}

TEST(Clients, ClientVanishingMidRequestHurtsNobody) {
    Cluster c({.hosts = 2});
    for (int i = 0; i < 20; ++i) {
        auto gone = c.client(1);
        ASSERT_TRUE(gone);
        ASSERT_TRUE(gone->send_line("sleep:50"));
    } // closed before their replies come
    EXPECT_EQ(c.request(1, "echo:still-here"), "still-here");
}

TEST(Clients, CloseConnectionExitEndsTheChildAndTheParentRestartsIt) {
    Cluster c({.hosts = 2});
    auto conn = c.client(1);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(conn->send_line("close_connection_exit"));
    EXPECT_TRUE(conn->wait_closed(5s));
    EXPECT_TRUE(c.wait_log("CRITICAL: Request Close Connection"));
    ASSERT_TRUE(wait_until([&] { return c.request(1, "ping") == c.id(1); }, 5s));
    EXPECT_EQ(c.request(0, "ping"), c.id(0));
}

} // namespace
} // namespace lonc::test
