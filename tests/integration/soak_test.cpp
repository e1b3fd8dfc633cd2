// Soak and peer chaos: lonc under sustained load, with and without peers
// misbehaving. Every request must end with its own reply (or, under chaos,
// con_lost), never another request's; lonc's memory must stay flat.
//
// Default sizes keep scripts/test short; LONC_TEST_FULL=1 runs the full
// soak (1,000,000 requests) and a longer chaos run.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <signal.h>
#include <thread>

#include "cluster.hpp"
#include "mixed_load.hpp"
#include "proc_stats.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Soak, EveryRequestGetsItsOwnReplyAndMemoryStaysFlat) {
    const std::uint64_t total = full_size() ? 1000000 : (under_asan() ? 8000 : 30000);
    Cluster c({.hosts = 4});
    const auto pids_before = c.lonc_pids();
    ASSERT_EQ(pids_before.size(), 5U);

    // Warm-up: the biggest payloads at the highest concurrency, both client
    // patterns, every peer, so every buffer has reached its working size.
    LoadOptions warm;
    warm.hosts = {0, 1, 2, 3};
    warm.requests = under_asan() ? 1000 : 4000;
    warm.max_concurrency = 48;
    // Links are opened on demand, and each brings its buffers: warm up
    // until a round opens no new link, so the baseline has them all.
    const auto links_opened = [&] {
        long n = 0;
        for (int h = 0; h < 4; ++h) {
            n += c.status_number(h, "links_opened").value_or(-1000);
        }
        return n;
    };
    long opened = -1;
    for (int round = 0; round < 5 && links_opened() != opened; ++round) {
        opened = links_opened();
        LoadResult warm_result;
        run_load(c, warm, warm_result);
        ASSERT_EQ(warm_result.ok.load(), warm_result.sent.load()) << warm_result.summary();
    }
    std::this_thread::sleep_for(200ms);
    const long rss_warm = c.lonc_rss_kib();

    LoadOptions soak = warm;
    soak.requests = total;
    LoadResult r;
    long rss_peak = rss_warm;
    run_load(c, soak, r, [&](std::uint64_t) { rss_peak = std::max(rss_peak, c.lonc_rss_kib()); });
    std::this_thread::sleep_for(200ms);
    const long rss_end = c.lonc_rss_kib();
    std::printf("soak: links opened on demand: %ld after warm-up, %ld at the end\n", opened,
                links_opened());

    // Zero crossed, lost or failed replies: every request got exactly its own.
    EXPECT_EQ(r.crossed.load(), 0U) << r.summary();
    EXPECT_GE(r.sent.load(), total) << r.summary(); // put + eget pairs count twice
    EXPECT_EQ(r.ok.load(), r.sent.load()) << r.summary();
    // No lonc process restarted along the way.
    EXPECT_EQ(c.lonc_pids(), pids_before);
    EXPECT_FALSE(c.log_contains("died|CRITICAL"));
    std::printf("soak: %llu requests (%llu with eget pairs) to 4 peers; rss after warm-up %ld "
                "KiB, peak %ld KiB, at the end %ld KiB; max latency %lld ms\n",
                static_cast<unsigned long long>(total),
                static_cast<unsigned long long>(r.sent.load()), rss_warm, rss_peak, rss_end,
                static_cast<long long>(r.max_latency_us.load() / 1000));
    if (!under_asan()) {
        // ASan's quarantine and shadow memory make RSS meaningless there; its
        // leak checker covers that build instead.
        EXPECT_LE(rss_end, rss_warm + rss_warm / 10)
            << "lonc grew from " << rss_warm << " KiB to " << rss_end << " KiB";
    }
}

// ------------------------------------------------------------ peer chaos

TEST(Chaos, PeerDyingMidReplyGivesConLostNeverAPartialReply) {
    Cluster c({.hosts = 2});
    auto conn = c.client(1);
    ASSERT_TRUE(conn);
    ASSERT_EQ(conn->request("ping"), c.id(1));
    for (const char* cut : {"half:1", "half:70000", "half:3000000"}) {
        EXPECT_EQ(conn->request(cut), "con_lost") << cut;
        ASSERT_TRUE(wait_until([&] { return c.request(1, "echo:next") == "next"; }, 5s)) << cut;
        // The kept connection is in step: its next reply is its own.
        EXPECT_EQ(conn->request("echo:mine"), "mine") << cut;
    }
    EXPECT_TRUE(c.log_contains("lond closed the connection during up"));
}

// What the chaos controller does to one peer for a moment.
enum class Fault { kill_restart, hang_silent, freeze, restart_refusing };

TEST(Chaos, PeersFailingEveryWayUnderLoadNeverCrossRepliesAndLinksRecover) {
    const double request_timeout = 2;
    Cluster c({.hosts = 4,
               .lonc_args = {"--request-timeout", "2", "--handshake-timeout", "1",
                             "--requeue-grace", "1", "--max-attempts", "1000"}});
    const auto pids_before = c.lonc_pids();

    LoadOptions o;
    o.hosts = {1, 2, 3};
    o.max_concurrency = 24;
    o.max_payload = 8192;
    o.duration = full_size() ? 180s : 20s;
    o.faults = {"close",  "half:100000", "half:5",   "garbage",
                "badenc", "badenc2",     "stopread", "sleep:4000:too-late"};
    o.fault_share = 0.02;
    o.eget_share = 0; // a restarted lond-sim forgets what was put
    o.reply_timeout = std::chrono::milliseconds(static_cast<int>(request_timeout * 1000)) + 8s;
    // con_lost comes at once, at --requeue-grace or at --request-timeout;
    // the margin is for a loaded machine (and ASan).
    o.late_after = std::chrono::milliseconds(static_cast<int>(request_timeout * 1000)) +
                   (under_asan() ? 3s : 1500ms);
    LoadResult r;

    std::atomic<bool> stop{false};
    std::map<Fault, int> done;
    std::thread chaos([&] {
        std::mt19937 rng(std::random_device{}());
        std::uniform_int_distribution<int> host(1, 3);
        std::uniform_int_distribution<int> pause_ms(200, 1200);
        // Every kind of fault in each round, in a random order.
        std::vector<Fault> round = {Fault::kill_restart, Fault::hang_silent, Fault::freeze,
                                    Fault::restart_refusing};
        std::size_t next = round.size();
        while (!stop) {
            std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
            if (next == round.size()) {
                std::shuffle(round.begin(), round.end(), rng);
                next = 0;
            }
            const int h = host(rng);
            const auto f = round[next++];
            switch (f) {
            case Fault::kill_restart: // killed mid-request, back soon
                c.kill_sim(h);
                std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng) / 2));
                c.start_sim(h);
                break;
            case Fault::hang_silent: // accepts, never answers: handshakes time out
                c.kill_sim(h);
                c.start_sim(h, {"--silent"});
                std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng) + 1000));
                c.kill_sim(h);
                c.start_sim(h);
                break;
            case Fault::freeze: // hung mid-session: in-flight requests time out
                c.sim(h).signal(SIGSTOP);
                std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng) + 1500));
                c.sim(h).signal(SIGCONT);
                break;
            case Fault::restart_refusing:
                c.kill_sim(h);
                c.start_sim(h, {"--refuse-handshake"});
                std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
                c.kill_sim(h);
                c.start_sim(h);
                break;
            }
            ++done[f];
        }
    });
    run_load(c, o, r);
    stop = true;
    chaos.join();

    // Every request ended with its own reply or con_lost, in time.
    EXPECT_EQ(r.crossed.load(), 0U) << r.summary();
    EXPECT_EQ(r.wrong.load(), 0U) << r.summary();
    EXPECT_EQ(r.lost.load(), 0U) << r.summary();
    EXPECT_EQ(r.late.load(), 0U) << r.summary();
    EXPECT_EQ(r.dropped.load(), 0U) << r.summary();
    EXPECT_GT(r.ok.load(), 1000U) << r.summary();
    EXPECT_GT(r.con_lost.load(), 0U) << r.summary();

    // The links come back by themselves (no USR1) once the peers behave.
    for (int h = 1; h <= 3; ++h) {
        EXPECT_TRUE(c.wait_socket(h, 10s)) << "h" << h;
        std::optional<std::string> got;
        EXPECT_TRUE(wait_until(
            [&] {
                got = c.request(h, "echo:recovered", 5s);
                return got == "recovered";
            },
            10s))
            << "h" << h << ": " << got.value_or("no reply");
    }
    for (const auto f :
         {Fault::kill_restart, Fault::hang_silent, Fault::freeze, Fault::restart_refusing}) {
        EXPECT_GE(done[f], 1) << "fault " << static_cast<int>(f) << " never happened";
    }
    // The peers' faults never took a lonc process down.
    EXPECT_EQ(c.lonc_pids(), pids_before);
    EXPECT_FALSE(c.log_contains("died:"));
    std::printf("chaos: %s\nfaults: kill+restart %d, silent %d, frozen %d, refusing %d\n",
                r.summary().c_str(), done[Fault::kill_restart], done[Fault::hang_silent],
                done[Fault::freeze], done[Fault::restart_refusing]);
}

} // namespace
} // namespace lonc::test
