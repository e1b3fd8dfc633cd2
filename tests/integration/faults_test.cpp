// Process faults and unreachable peers: lonc's own processes killed, out of
// descriptors, with a full log disk; peers that drop packets or refuse.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <future>
#include <poll.h>
#include <regex>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>

#include "cluster.hpp"
#include "mixed_load.hpp"
#include "proc_stats.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The pid of the child serving host (its last "Child for <id> started" line).
pid_t child_of(const Cluster& c, int host) {
    const std::regex re("Child for " + c.id(host) + " started \\(pid ([0-9]+)\\)");
    const auto log = c.log();
    pid_t pid = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
         ++it) {
        pid = static_cast<pid_t>(std::stol((*it)[1].str()));
    }
    return pid;
}

bool alive(pid_t pid) {
    return pid > 0 && ::kill(pid, 0) == 0;
}

// 0 if a UNIX socket at path accepts a connection, else errno.
int connect_errno(const std::filesystem::path& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = rc == 0 ? 0 : errno;
    ::close(fd);
    return err;
}

// ------------------------------------------------------- process faults

TEST(ProcessFaults, ChildKilledDuringRequestsOnlyItsClientsNotice) {
    Cluster c({.hosts = 3});
    const pid_t victim = child_of(c, 1);
    const pid_t other0 = child_of(c, 0);
    const pid_t other2 = child_of(c, 2);
    ASSERT_TRUE(alive(victim) && alive(other0) && alive(other2));
    LatencyProbe probe(c, 2);
    // Requests in flight on the victim: slow ones, and big replies. Each
    // carries its own token: a big reply lond sent before the first slow
    // one may arrive whole before the kill, and that is fine.
    // All sent before the kill, each on its own connection to the victim.
    std::vector<LineClient> inflight;
    for (int i = 0; i < 10; ++i) {
        const auto token = "tok" + std::to_string(i) + ":";
        auto conn = c.client(1);
        ASSERT_TRUE(conn);
        ASSERT_TRUE(conn->send_line(i % 2 == 0 ? "sleep:3000:" + token : "bytes:5000000:" + token));
        inflight.push_back(std::move(*conn));
    }
    // The victim is busy with them: lond holds a slow one.
    ASSERT_TRUE(wait_until(
        [&] {
            const auto rows = c.sim_requests(1);
            return std::any_of(rows.begin(), rows.end(), [](const auto& row) {
                return row.back().rfind("sleep:3000:", 0) == 0;
            });
        },
        10s));
    ::kill(victim, SIGKILL);
    int lost = 0;
    for (int i = 0; i < 10; ++i) {
        const auto r = inflight[static_cast<std::size_t>(i)].read_line(10s);
        // lonnet sees either con_lost or a closed socket (which it treats
        // as con_lost), or its own reply; never someone else's.
        if (!r || *r == "con_lost") {
            ++lost;
        } else {
            const auto token = "tok" + std::to_string(i) + ":";
            EXPECT_EQ(r->substr(0, token.size()), token) << r->substr(0, 80);
            EXPECT_TRUE(i % 2 == 1)
                << "a 3 s request answered by a child killed before lond answered it";
        }
    }
    // lond answers one at a time: each slow request, at least, was still
    // waiting or on the wire when the child died.
    EXPECT_GE(lost, 5);
    EXPECT_TRUE(c.wait_log("Child " + std::to_string(victim) + " for server h1 died: signal 9"));
    ASSERT_TRUE(wait_until([&] { return c.request(1, "echo:back") == "back"; }, 10s));
    EXPECT_NE(child_of(c, 1), victim);
    probe.stop();
    EXPECT_EQ(probe.failures(), 0U) << probe.summary();
    EXPECT_TRUE(alive(other0) && alive(other2));
    EXPECT_EQ(child_of(c, 0), other0);
    EXPECT_EQ(child_of(c, 2), other2);
}

TEST(ProcessFaults, ParentKilledUnderLoadLeavesNoSocketServing) {
    Cluster c({.hosts = 3});
    const auto kids = c.children();
    ASSERT_EQ(kids.size(), 3U);
    LoadOptions o;
    o.hosts = {0, 1, 2};
    o.max_concurrency = 8;
    o.max_payload = 4096;
    o.duration = 3s;
    o.reply_timeout = 15s;
    LoadResult r;
    std::thread load([&] { run_load(c, o, r); });
    std::this_thread::sleep_for(1s);
    const auto t0 = Clock::now();
    c.lonc().kill(); // SIGKILL: the parent cleans nothing up
    for (const auto pid : kids) {
        EXPECT_TRUE(wait_until([&] { return !alive(pid); }, 10s)) << pid;
    }
    const double gone = since(t0);
    load.join();
    // Children drained (PR_SET_PDEATHSIG, or EOF on their channel), removed
    // their sockets: nothing answers there any more.
    for (int h = 0; h < 3; ++h) {
        EXPECT_FALSE(std::filesystem::exists(c.socket(h))) << h;
        EXPECT_NE(connect_errno(c.socket(h)), 0) << h;
    }
    EXPECT_EQ(r.crossed.load(), 0U) << r.summary();
    EXPECT_EQ(r.wrong.load(), 0U) << r.summary();
    EXPECT_EQ(r.lost.load(), 0U) << r.summary();
    EXPECT_GT(r.ok.load(), 10U) << r.summary();
    EXPECT_TRUE(c.log_contains("Lost the parent|Child for h[0-2] exiting"));
    // The pid file names a dead process: the next start takes it over.
    ASSERT_TRUE(std::filesystem::exists(c.pid_file()));
    c.start_lonc();
    EXPECT_TRUE(c.wait_all_sockets());
    EXPECT_EQ(c.request(2, "ping"), c.id(2));
    std::printf("parent killed: children gone after %.2f s; load %s\n", gone, r.summary().c_str());
}

TEST(ProcessFaults, FdLimitOf64PausesAcceptWithoutSpinningAndRecovers) {
    Cluster c({.hosts = 2, .lonc_wrapper = {"/usr/bin/prlimit", "--nofile=64:64", "--"}});
    const pid_t child = child_of(c, 1);
    ASSERT_TRUE(alive(child));
    EXPECT_EQ(nofile_limits(child).first, 64);
    // Twice as many clients as the child has descriptors: the extra ones
    // wait in the listen backlog.
    std::vector<LineClient> clients;
    for (int i = 0; i < 120; ++i) {
        auto conn = c.client(1);
        ASSERT_TRUE(conn) << i;
        ASSERT_TRUE(conn->send_line("echo:c" + std::to_string(i)));
        clients.push_back(std::move(*conn));
    }
    ASSERT_TRUE(c.wait_log(R"(\[h1\] .*WARNING: accept: Too many open files.*; pausing accept)"));
    // Paused, not spinning: the child uses next to no CPU while it waits.
    const double cpu0 = cpu_seconds(child);
    std::this_thread::sleep_for(2s);
    const double cpu = cpu_seconds(child) - cpu0;
    EXPECT_LT(cpu, 0.2) << "the child burnt " << cpu << " s of CPU in 2 s";
    // The accepted clients were served; the others still wait.
    std::vector<bool> answered(clients.size(), false);
    std::size_t first_round = 0;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        pollfd p{clients[i].fd(), POLLIN, 0};
        if (::poll(&p, 1, 0) == 1) {
            EXPECT_EQ(clients[i].read_line(2s), "c" + std::to_string(i));
            answered[i] = true;
            ++first_round;
        }
    }
    EXPECT_GT(first_round, 20U);
    EXPECT_LT(first_round, 64U);
    // They leave; the rest are accepted and answered.
    for (std::size_t i = 0; i < clients.size(); ++i) {
        if (answered[i]) {
            clients[i].close();
        }
    }
    for (std::size_t i = 0; i < clients.size(); ++i) {
        if (!answered[i]) {
            const auto r = clients[i].read_line(10s);
            EXPECT_EQ(r, "c" + std::to_string(i));
            clients[i].close();
        }
    }
    EXPECT_TRUE(c.wait_log(R"(\[h1\] .*INFO: accepting clients again)"));
    EXPECT_EQ(c.request(1, "echo:after"), "after");
    EXPECT_EQ(child_of(c, 1), child);
    std::printf("fd limit 64: %zu served at first, %zu after others left; %.3f s CPU while "
                "paused for 2 s\n",
                first_round, clients.size() - first_round, cpu);
}

TEST(ProcessFaults, ParentOutOfDescriptorsKeepsServingThePeersItStarted) {
    // 80 peers (one lond-sim serves them all) and 64 descriptors: the
    // supervisor runs out while it starts children. It must log that, keep
    // running and serving the peers it could start, and not spin.
    if (under_asan()) {
        // UBSan's vptr check probes memory through a pipe(2) it opens; in a
        // process with no descriptor left it reports live objects as having
        // an invalid vptr (seen: the event loop's first call of a probe).
        // The release run proves this behaviour; children at the limit are
        // covered under ASan by the tests around this one.
        GTEST_SKIP() << "UBSan's vptr check needs free descriptors of its own";
    }
    constexpr int hosts = 80;
    Cluster c({.hosts = hosts,
               .start_sims = false,
               .start_lonc = false,
               .lonc_wrapper = {"/usr/bin/prlimit", "--nofile=64:64", "--"}});
    SpawnOptions so;
    so.capture_stdout = true;
    so.stderr_file = (c.dir() / "sim-all.err").string();
    auto sim = Process::spawn({lond_sim_binary(), "--hosts", c.hosts_tab().string(), "--port",
                               std::to_string(c.port()), "--serve-all"},
                              so);
    ASSERT_TRUE(sim.wait_for_output("ready", 10s));
    c.start_lonc({"--reprobe-interval", "5"});
    ASSERT_TRUE(c.wait_log("Done starting initial servers", 30s));
    ASSERT_TRUE(
        c.wait_log(R"(Cannot start a child for h[0-9]+: socketpair: Too many open files)", 10s));
    std::this_thread::sleep_for(2s);
    ASSERT_TRUE(c.lonc().running()) << "the supervisor died";
    const pid_t parent = c.lonc().pid();
    const double cpu0 = cpu_seconds(parent);
    std::this_thread::sleep_for(2s);
    EXPECT_LT(cpu_seconds(parent) - cpu0, 0.3) << "the supervisor spins";
    int served = 0;
    for (int h = 0; h < hosts; ++h) {
        if (std::filesystem::exists(c.socket(h)) && c.request(h, "ping", 5s) == c.id(h)) {
            ++served;
        }
    }
    EXPECT_GT(served, 20);
    EXPECT_TRUE(c.lonc().running());
    std::printf("parent at 64 descriptors: %d of %d peers served\n", served, hosts);
}

TEST(ProcessFaults, FullLogDirectoryCostsLogLinesNotService) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto logs = c.dir() / "logs";
    SmallTmpfs fs(logs, "64k"); // destroyed before the cluster: always unmounted
    const auto www = Cluster::www_uid();
    ASSERT_EQ(::chown(logs.c_str(), www, static_cast<gid_t>(-1)), 0);
    c.dir().write("logs/lonnet.perm.log", "");
    ASSERT_EQ(::chown(c.perm_log().c_str(), www, static_cast<gid_t>(-1)), 0);
    c.start_lonc({"--max-line", "100", "--request-timeout", "1"});
    ASSERT_TRUE(c.wait_all_sockets());
    // Fill the file system to the last byte.
    (void)std::system(
        ("dd if=/dev/zero of=" + (logs / "filler").string() + " bs=4096 2>/dev/null").c_str());
    // Plenty of log lines that cannot be written: over-long lines, request
    // timeouts (each resets the link: more lines).
    auto make_noise = [&](int n) {
        for (int i = 0; i < n; ++i) {
            auto bad = c.client(1);
            if (bad) {
                (void)bad->request(std::string(200, 'x'));
            }
        }
    };
    make_noise(100);
    const auto size_full = std::filesystem::file_size(c.log_file());
    EXPECT_EQ(c.request(1, "sleep:2000:late"), "con_lost");
    make_noise(50);
    // Still serving, on every peer, with the disk full.
    ASSERT_TRUE(wait_until([&] { return c.request(1, "echo:x") == "x"; }, 10s));
    EXPECT_EQ(c.request(0, "ping"), c.id(0));
    EXPECT_EQ(std::filesystem::file_size(c.log_file()), size_full); // nothing more fitted
    // Space returns: the next line comes with a note of what was lost.
    std::filesystem::remove(logs / "filler");
    make_noise(1);
    EXPECT_TRUE(
        c.wait_log(R"(\[h1\] [^\n]*WARNING: [0-9]+ log lines lost \(No space left on device\))"))
        << c.log().substr(c.log().size() > 2000 ? c.log().size() - 2000 : 0);
    std::smatch m;
    const auto text = c.log();
    ASSERT_TRUE(
        std::regex_search(text, m, std::regex(R"(\[h1\] [^\n]*WARNING: ([0-9]+) log lines lost)")));
    EXPECT_GE(std::stol(m[1].str()), 50);
    EXPECT_EQ(c.request(1, "echo:y"), "y");
    std::printf("full log disk: %s lines lost and reported once space returned\n",
                m[1].str().c_str());
}

TEST(ProcessFaults, ClientsFillingAChildsDescriptorsLeaveRoomForItsDelayedMessages) {
    Cluster c({.hosts = 2,
               .lonc_args = {"--spool-bad-age", "0.5", "--spool-rescan", "1"},
               .lonc_wrapper = {"/usr/bin/prlimit", "--nofile=64:64", "--"}});
    // More clients than h1's child takes with 64 descriptors: the rest wait
    // in the backlog, and the descriptors the child keeps for its own work
    // stay free.
    std::vector<LineClient> hogs;
    for (int i = 0; i < 80; ++i) {
        auto conn = c.client(1);
        ASSERT_TRUE(conn);
        hogs.push_back(std::move(*conn));
    }
    ASSERT_TRUE(c.wait_log(R"(\[h1\] .*pausing accept)"));
    // A delayed message, old enough to be judged at once if unreadable (made
    // old before it is in delayed/, where it may be delivered at once): it
    // is read and delivered while every client is still connected.
    const auto staged = c.spool_file(".staged", "echo:spooled-while-full\n");
    const auto old = std::time(nullptr) - 3600;
    const timespec times[2] = {{old, 0}, {old, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, staged.c_str(), times, 0), 0);
    const auto file = c.spool() / "100.m.h1";
    std::filesystem::rename(staged, file);
    // The file is renamed to its .sent marker before the S line is written:
    // wait for the line, then the file is surely gone.
    EXPECT_TRUE(wait_until(
        [&] {
            return slurp(c.perm_log()).find(":S:h1:echo:spooled-while-full:") != std::string::npos;
        },
        10s));
    EXPECT_FALSE(std::filesystem::exists(file));
    EXPECT_FALSE(std::filesystem::exists(c.spool() / "100.m.h1.bad"));
    EXPECT_FALSE(c.log_contains("100.m.h1 is unreadable"));
    // The clients it holds are served, on links opened on demand (a
    // descriptor each, kept for them too); the others once those leave.
    for (auto& h : hogs) {
        ASSERT_TRUE(h.send_line("echo:held"));
    }
    std::size_t answered = 0;
    const auto deadline = Clock::now() + 30s;
    while (answered < hogs.size() && Clock::now() < deadline) {
        std::vector<pollfd> fds;
        std::vector<LineClient*> who;
        for (auto& h : hogs) {
            if (h.fd() >= 0) {
                fds.push_back({h.fd(), POLLIN, 0});
                who.push_back(&h);
            }
        }
        ASSERT_GT(::poll(fds.data(), fds.size(), 1000), -1);
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].revents != 0) {
                EXPECT_EQ(who[i]->read_line(2s), "held");
                who[i]->close();
                ++answered;
            }
        }
    }
    EXPECT_EQ(answered, hogs.size());
    EXPECT_FALSE(c.log_contains(R"(\[h1\] .*(Link|link).*Too many open files)"));
}

// ------------------------------------------------------ unreachable peers

TEST(Unreachable, SilentDropTakesTheProbeTimeoutThenThePeerIsUnreachable) {
    Cluster c({.hosts = 3, .start_lonc = false});
    DropRule drop(c.ip(2));
    const auto t0 = Clock::now();
    c.start_lonc({"--probe-timeout", "3", "--reprobe-interval", "60"});
    // The others do not wait for the silent one (probes run concurrently).
    ASSERT_TRUE(c.wait_socket(0) && c.wait_socket(1));
    EXPECT_LT(since(t0), 2.9);
    ASSERT_TRUE(c.wait_log(
        R"(h2 \()" + c.ip(2) + R"(\) is unreachable: no answer within the probe timeout)", 10s));
    const double verdict = since(t0);
    EXPECT_GE(verdict, 2.95);
    EXPECT_LT(verdict, 6.0);
    EXPECT_TRUE(c.wait_log("Done starting initial servers"));
    EXPECT_EQ(c.children().size(), 2U); // no child for h2
    EXPECT_FALSE(std::filesystem::exists(c.socket(2)));
    EXPECT_FALSE(c.request(2, "ping").has_value());
    std::printf("silent drop: probe verdict after %.2f s (--probe-timeout 3)\n", verdict);
}

TEST(Unreachable, RefusedConnectionCountsAsUpAndTheLinkRetriesWithBackoff) {
    Cluster c({.hosts = 3, .start_sims = false, .start_lonc = false});
    c.start_sim(0);
    c.start_sim(1);
    // Nothing listens on h2's address: every connect is answered with RST.
    c.start_lonc({"--retry-min", "0.2", "--retry-max", "1"});
    ASSERT_TRUE(c.wait_socket(0) && c.wait_socket(1));
    // As the original's ping: refused means the host is up, so it gets a child...
    EXPECT_TRUE(c.wait_log("Attempting to start child for server h2"));
    EXPECT_TRUE(wait_until([&] { return c.children().size() == 3U; }, 5s));
    // ... whose link fails, logged at 1, 2, 4, 8 attempts, and retries with
    // backoff; its socket never appears meanwhile.
    EXPECT_TRUE(c.wait_log(R"(\[h2\] .*Couldn't connect to h2 \(link 1, at [a-z]+\): connect to )" +
                           c.ip(2) + ":[0-9]+ failed: Connection refused"));
    const auto t0 = Clock::now();
    while (since(t0) < 3) {
        ASSERT_FALSE(std::filesystem::exists(c.socket(2)));
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(c.log_contains("h2 still down after 4 attempts"));
    EXPECT_FALSE(c.log_contains("h2 still down after 32 attempts")); // backoff, no hot loop
    EXPECT_FALSE(c.request(2, "ping").has_value());
    c.start_sim(2);
    const auto t1 = Clock::now();
    ASSERT_TRUE(c.wait_socket(2, 5s));
    EXPECT_LT(since(t1), 2.5); // within --retry-max (1 s) and a margin
    EXPECT_EQ(c.request(2, "ping"), c.id(2));
}

TEST(Unreachable, PeerThatStartsDroppingMidSessionTimesOutAndTheLinkIsReset) {
    Cluster c({.hosts = 2, .lonc_args = {"--request-timeout", "1.5", "--handshake-timeout", "1"}});
    ASSERT_EQ(c.request(1, "ping"), c.id(1));
    std::optional<std::string> reply;
    double took = 0;
    {
        DropRule drop(c.ip(1));
        const auto t0 = Clock::now();
        reply = c.request(1, "echo:into-the-void", 10s);
        took = since(t0);
        EXPECT_TRUE(c.wait_no_socket(1)); // the link was reset, the socket went
        // Reconnects meanwhile time out in the handshake (SYNs vanish).
        EXPECT_TRUE(c.wait_log(R"(\[h1\] .*handshake timed out at step 'connecting' after 1)", 5s));
        EXPECT_FALSE(c.request(1, "ping").has_value());
    }
    EXPECT_EQ(reply, "con_lost");
    EXPECT_GE(took, 1.4);
    EXPECT_LT(took, 4.0); // the request timeout, not the client's 10 s
    // On the wire, or queued behind a pong that was on the wire when the
    // drop began (a slow start under ASan sends the pong first): both time out.
    EXPECT_TRUE(c.log_contains(
        R"(CRITICAL: Timeout: (echo:into-the-void|1 queued request never sent within 1.5 s \(first: echo:into-the-void\)))"))
        << c.log();
    EXPECT_TRUE(c.log_contains(R"(Connection to h1 lost \(link 1\): request timed out after 1.5)"));
    // The drop is gone: the link comes back by itself.
    ASSERT_TRUE(c.wait_socket(1, 5s));
    EXPECT_EQ(c.request(1, "echo:back"), "back");
    std::printf("drop mid-session: con_lost after %.2f s (--request-timeout 1.5)\n", took);
}

} // namespace
} // namespace lonc::test
