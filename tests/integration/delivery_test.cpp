// Delayed messages: lonSockDir/delayed/<epoch>.<middle>.<hostid>, delivered
// at least once, recorded exactly once, never lost.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <signal.h>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <utime.h>

#include "cluster.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool full_size() {
    return std::getenv("LONC_TEST_FULL") != nullptr;
}

std::size_t count_lines_with(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
        ++n;
    }
    return n;
}

// Requests a lond-sim received, decrypted column, in order.
std::vector<std::string> received(const Cluster& c, int host) {
    std::vector<std::string> out;
    for (const auto& row : c.sim_requests(host)) {
        if (row.size() >= 3) {
            out.push_back(row[2]);
        }
    }
    return out;
}

std::vector<std::string> spool_names(const Cluster& c) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(c.spool())) {
        out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Delivered and recorded: the file is gone, and so is the <name>.sent
// marker that stands between lond's answer and the S: line.
bool wait_delivered(const Cluster& c, const std::string& name,
                    std::chrono::milliseconds timeout = 5s) {
    return wait_until(
        [&] {
            return !std::filesystem::exists(c.spool() / name) &&
                   !std::filesystem::exists(c.spool() / (name + ".sent"));
        },
        timeout);
}

void make_old(const std::filesystem::path& p, int seconds_ago) {
    const auto t = std::time(nullptr) - seconds_ago;
    const utimbuf times{t, t};
    ::utime(p.c_str(), &times);
}

TEST(Spool, FileWrittenWhileTheLinkIsUpIsDeliveredWithinSeconds) {
    Cluster c({.hosts = 2});
    const auto token = unique_token("live");
    const auto name = std::to_string(std::time(nullptr)) + ".echo" + token + ".h1";
    const auto t0 = Clock::now();
    c.spool_file(name, "echo:" + token + "\n");
    ASSERT_TRUE(wait_delivered(c, name, 10s));
    // Noticed at once, not at the next rescan (30 s); 5 s leaves room for a busy machine.
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
    const auto perm = slurp(c.perm_log());
    EXPECT_EQ(count_lines_with(perm, ":S:h1:echo:" + token + ":"), 1U) << perm;
    const auto got = received(c, 1);
    EXPECT_EQ(std::count(got.begin(), got.end(), "echo:" + token), 1);
    EXPECT_TRUE(spool_names(c).empty());
}

TEST(Spool, BacklogIsDeliveredAtLinkUpOldestFirstAndEncryptedWhenAsked) {
    Cluster c({.hosts = 2, .start_lonc = false});
    // Out of lexical order on purpose: epochs compare as numbers.
    const std::vector<std::pair<std::string, std::string>> files = {
        {"100.b.h1", "echo:third"},          {"9.z.h1", "echo:first"},
        {"100.a.h1", "encrypt:echo:second"}, {"1000.a.h1", "echo:fourth"},
        {"50.a.h0", "echo:for-h0"},          {"7.a.h9", "echo:unknown-host"},
        {"lock", "echo:not-a-spool-file"}};
    for (const auto& [name, cmd] : files) {
        c.spool_file(name, cmd + "\n");
    }
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_until(
        [&] {
            return spool_names(c) == std::vector<std::string>{"7.a.h9", "lock"};
        },
        10s))
        << ::testing::PrintToString(spool_names(c));
    std::vector<std::string> spooled;
    for (const auto& r : received(c, 1)) {
        if (r.rfind("echo:", 0) == 0) {
            spooled.push_back(r);
        }
    }
    EXPECT_EQ(spooled,
              (std::vector<std::string>{"echo:first", "echo:second", "echo:third", "echo:fourth"}));
    // The encrypt: entry went out as enc: on the wire.
    bool saw = false;
    for (const auto& row : c.sim_requests(1)) {
        if (row.size() >= 3 && row[2] == "echo:second") {
            saw = row[1].rfind("enc:", 0) == 0;
        }
    }
    EXPECT_TRUE(saw);
    const auto perm = slurp(c.perm_log());
    EXPECT_EQ(count_lines_with(perm, ":S:h1:encrypt:echo:second:"), 1U) << perm;
    EXPECT_EQ(count_lines_with(perm, ":S:h0:echo:for-h0:"), 1U);
    EXPECT_EQ(count_lines_with(perm, ":S:"), 5U);
    // Status: delivered counts per peer.
    // From a generation every child answered (a busy one may miss one: ask again).
    nlohmann::json status;
    ASSERT_TRUE(wait_until(
        [&] {
            status = nlohmann::json::parse(slurp(c.status_json()), nullptr, false);
            const bool all = status.is_object() && status.contains("peers") &&
                             std::all_of(status["peers"].begin(), status["peers"].end(),
                                         [](const auto& p) { return p.value("answered", false); });
            if (!all) {
                ::kill(c.lonc_pid(), SIGUSR1);
            }
            return all;
        },
        10s, 300ms));
    for (const auto& p : status["peers"]) {
        EXPECT_EQ(p["spool_delivered"], p["id"] == "h1" ? 4 : 1) << p.dump();
        EXPECT_EQ(p["spool_pending"], 0);
    }
}

TEST(Spool, HostIdWithDotsGetsItsFiles) {
    Cluster c({.hosts = 2, .ids = {"msu.h0", "lon_capa.edu"}});
    const auto name = std::to_string(std::time(nullptr)) + ".putdots.lon_capa.edu";
    c.spool_file(name, "echo:dotted\n");
    ASSERT_TRUE(wait_delivered(c, name));
    const auto got = received(c, 1);
    EXPECT_NE(std::find(got.begin(), got.end(), "echo:dotted"), got.end());
    EXPECT_EQ(count_lines_with(slurp(c.perm_log()), ":S:lon_capa.edu:echo:dotted:"), 1U);
}

TEST(Spool, RefusedAnswersCountAsDeliveredWithAWarning) {
    Cluster c({.hosts = 2});
    c.spool_file("5.auth.h1", "auth:dom:user:pw\n"); // lond refuses auth in clear
    c.spool_file("6.bogus.h1", "bogus_command\n");   // unknown_cmd
    ASSERT_TRUE(wait_until([&] { return spool_names(c).empty(); }, 5s));
    EXPECT_TRUE(c.wait_log(
        R"(WARNING: Delayed message 5\.auth\.h1 was answered >refused< \(counted as delivered\))"));
    EXPECT_TRUE(c.wait_log(R"(WARNING: Delayed message 6\.bogus\.h1 was answered >unknown_cmd<)"));
    EXPECT_EQ(count_lines_with(slurp(c.perm_log()), ":S:h1:"), 2U);
}

TEST(Spool, BadFilesAreSetAsideOnlyOnceTheyStoppedChangingAndNeverBlockTheRest) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.spool_file("1.empty.h1", "");
    c.spool_file("2.nonewline.h1", "echo:unterminated");
    c.spool_file("3.toolong.h1", "echo:" + std::string(300, 'x') + "\n");
    const auto unreadable = c.spool_file("4.unreadable.h1", "echo:secret\n");
    ::chmod(unreadable.c_str(), 0000); // root-owned: www cannot read it
    c.spool_file("5.young.h1", "");    // bad but fresh: left alone for now
    c.spool_file("9.good.h1", "echo:after-the-bad-ones\n");
    for (const char* old : {"1.empty.h1", "2.nonewline.h1", "3.toolong.h1", "4.unreadable.h1"}) {
        make_old(c.spool() / old, 120);
    }
    c.start_lonc({"--spool-max-line", "100", "--spool-bad-age", "60"});
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_delivered(c, "9.good.h1"));
    const auto got = received(c, 1);
    EXPECT_NE(std::find(got.begin(), got.end(), "echo:after-the-bad-ones"), got.end());
    ASSERT_TRUE(wait_until(
        [&] {
            return spool_names(c) == std::vector<std::string>{
                                         "1.empty.h1.bad", "2.nonewline.h1.bad", "3.toolong.h1.bad",
                                         "4.unreadable.h1.bad", "5.young.h1"};
        },
        5s))
        << ::testing::PrintToString(spool_names(c));
    for (const char* why : {"1.empty.h1 is empty", "2.nonewline.h1 is no newline-terminated",
                            "3.toolong.h1 is first line longer than --spool-max-line",
                            "4.unreadable.h1 is unreadable"}) {
        EXPECT_TRUE(c.log_contains(std::string("WARNING: Delayed message ") + why)) << why;
    }
    EXPECT_EQ(count_lines_with(slurp(c.perm_log()), ":S:"), 1U);
    // Nothing set aside is ever retried or deleted.
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(spool_names(c).size(), 5U);
}

TEST(Spool, HalfWrittenFileIsDeliveredOnceCompleted) {
    Cluster c({.hosts = 2, .lonc_args = {"--spool-bad-age", "30"}});
    const auto path = c.spool() / "77.half.h1";
    {
        std::ofstream out(path);
        out << "echo:half"; // lonnet is still writing...
    }
    std::this_thread::sleep_for(700ms);
    EXPECT_TRUE(std::filesystem::exists(path)); // not delivered, not set aside
    {
        std::ofstream out(path, std::ios::app);
        out << "-done\n";
    }
    ASSERT_TRUE(wait_delivered(c, path.filename().string()));
    const auto got = received(c, 1);
    EXPECT_NE(std::find(got.begin(), got.end(), "echo:half-done"), got.end());
    EXPECT_EQ(count_lines_with(slurp(c.perm_log()), ":S:h1:echo:half-done:"), 1U);
}

TEST(Spool, OnlyTheProcessHoldingTheHostLockDelivers) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.dir().make_dir("sockets/.lonc-spool", "www", 0700);
    const auto lockfile = c.dir() / "sockets/.lonc-spool/h1.lock";
    const int fd = ::open(lockfile.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fchown(fd, Cluster::www_uid(), static_cast<gid_t>(-1)), 0);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0); // "another lonc" delivering h1's messages
    c.spool_file("10.locked.h1", "echo:waits-for-the-lock\n");
    c.spool_file("10.free.h0", "echo:h0-is-free\n");
    c.start_lonc({"--spool-rescan", "0.5"});
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_delivered(c, "10.free.h0"));
    EXPECT_TRUE(c.wait_log("Another lonc process is delivering h1's delayed messages"));
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(std::filesystem::exists(c.spool() / "10.locked.h1"));
    ::close(fd); // released
    ASSERT_TRUE(
        wait_until([&] { return !std::filesystem::exists(c.spool() / "10.locked.h1"); }, 5s));
}

TEST(Spool, InterruptedRecordIsCompletedExactlyOnce) {
    Cluster c({.hosts = 2, .start_lonc = false});
    // Two markers left by a killed lonc: one whose S line made it, one not.
    c.spool_file("20.rec.h1.sent", "echo:recorded-before-the-kill\n");
    c.spool_file("21.norec.h1.sent", "echo:not-recorded\n");
    {
        std::ofstream perm(c.perm_log(), std::ios::app);
        perm << std::time(nullptr)
             << ":S:h1:echo:recorded-before-the-kill:Thu Jan  1 00:00:00 1970\n";
    }
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_until([&] { return spool_names(c).empty(); }, 5s));
    const auto perm = slurp(c.perm_log());
    EXPECT_EQ(count_lines_with(perm, ":S:h1:echo:recorded-before-the-kill:"), 1U);
    EXPECT_EQ(count_lines_with(perm, ":S:h1:echo:not-recorded:"), 1U);
    // A marker means lond already answered: it is never sent again.
    const auto got = received(c, 1);
    EXPECT_EQ(std::count(got.begin(), got.end(), "echo:not-recorded"), 0);
}

// ------------------------------------------------- lonnet's point of view

// How many times lond-sim for host got cmd.
long times_received(const Cluster& c, int host, const std::string& cmd) {
    const auto got = received(c, host);
    return std::count(got.begin(), got.end(), cmd);
}

// Lines of text holding both a and b.
std::size_t lines_with(const std::string& text, const std::string& a, const std::string& b) {
    std::size_t n = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) {
            ++n;
        }
    }
    return n;
}

// Every line of lonnet.perm.log is whole: "<epoch>:<D|S|F>:<host>:<cmd>:<localtime>",
// with a recent epoch and a known host. A line of spaces is what lonc
// leaves of a record the disk cut short.
void expect_whole_perm_lines(const Cluster& c, const std::set<std::string>& hosts) {
    static const std::regex whole(
        R"(^([0-9]+):[DSF]:([^:]+):.*:[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}$)");
    const auto now = static_cast<long long>(std::time(nullptr));
    std::istringstream in(slurp(c.perm_log()));
    std::string line;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(' ') == std::string::npos) {
            continue;
        }
        std::smatch m;
        const bool ok = std::regex_match(line, m, whole) && m[1].length() < 12 &&
                        std::abs(std::stoll(m[1].str()) - now) < 86400 &&
                        hosts.count(m[2].str()) == 1;
        EXPECT_TRUE(ok) << "broken lonnet.perm.log line: " << line;
    }
}

// A recorded S line for put:a:b:c is no record of put:a:b: the marker's
// own command must be the whole record, up to its localtime.
TEST(Spool, RecordOfALongerCommandDoesNotStandForAShorterOne) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.spool_file("22.put.h1.sent", "put:a:b\n");
    {
        std::ofstream perm(c.perm_log(), std::ios::app);
        perm << std::time(nullptr) << ":S:h1:put:a:b:c:Thu Jan  1 00:00:00 1970\n";
    }
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_until([&] { return spool_names(c).empty(); }, 5s));
    const auto perm = slurp(c.perm_log());
    EXPECT_EQ(count_lines_with(perm, ":S:h1:put:a:b:c:"), 1U) << perm;
    EXPECT_EQ(count_lines_with(perm, ":S:h1:put:a:b:"), 2U) << perm;
    EXPECT_EQ(times_received(c, 1, "put:a:b"), 0) << "a marker's message was sent again";
}

// lonnet's own bookkeeping stays true: every file it spooled reads back
// (D, never F), and each D line is matched by exactly one S line.
// The Cluster's tests run with --spool-min-age 0; these play lonnet.
const std::vector<std::string> lonnet_window = {"--spool-min-age", "5"}; // the default

TEST(Lonnet, ReadsBackEveryFileItSpoolsAndEachDLineGetsOneSLine) {
    Cluster c({.hosts = 2, .lonc_args = lonnet_window});
    const auto token = unique_token("ln");
    std::vector<std::string> cmds;
    std::vector<Cluster::LonnetSpool> results;
    std::mutex mutex;
    auto spool_all = [&](const std::vector<std::string>& batch) {
        std::vector<std::thread> workers;
        workers.reserve(batch.size());
        for (const auto& cmd : batch) {
            workers.emplace_back([&, cmd] {
                auto r = c.lonnet_spool(1, cmd);
                const std::lock_guard lock(mutex);
                results.push_back(r);
            });
        }
        for (auto& w : workers) {
            w.join();
        }
        cmds.insert(cmds.end(), batch.begin(), batch.end());
    };
    // Commands with distinct first 16 characters: distinct file names.
    auto commands = [&](const std::string& prefix, int n) {
        std::vector<std::string> out;
        out.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            out.push_back("echo:" + prefix + std::to_string(i) + "-" + token);
        }
        return out;
    };
    // Six web workers spool at once while the link is up...
    spool_all(commands("u", 6));
    // ...and three while it is down.
    c.kill_sim(1);
    ASSERT_TRUE(c.wait_no_socket(1));
    spool_all(commands("d", 3));
    c.start_sim(1);
    std::set<std::string> names;
    for (const auto& r : results) {
        names.insert(r.name);
        EXPECT_TRUE(r.delayed) << "lonnet could not read back " << r.name
                               << ": it logged F and told its caller con_failed";
    }
    ASSERT_EQ(names.size(), cmds.size()) << "the test needs distinct file names";
    for (const auto& name : names) {
        EXPECT_TRUE(wait_delivered(c, name, 30s)) << name;
    }
    const auto perm = slurp(c.perm_log());
    EXPECT_EQ(count_lines_with(perm, ":F:"), 0U) << perm;
    EXPECT_EQ(count_lines_with(perm, ":D:h1:"), cmds.size()) << perm;
    EXPECT_EQ(count_lines_with(perm, ":S:h1:"), cmds.size()) << perm;
    for (const auto& cmd : cmds) {
        EXPECT_EQ(count_lines_with(perm, ":S:h1:" + cmd + ":"), 1U) << cmd;
        EXPECT_EQ(times_received(c, 1, cmd), 1) << cmd;
    }
    expect_whole_perm_lines(c, {"h0", "h1"});
}

// A second worker rewrites the same file name (same second, same first 16
// characters) while lonc waits for lond's answer to the first message:
// both messages are delivered, each with its own S line.
TEST(Lonnet, FileRewrittenWhileItsAnswerIsAwaitedIsDeliveredToo) {
    Cluster c({.hosts = 2, .lonc_args = lonnet_window});
    const auto token = unique_token("rw");
    const auto first = "sleep:4000:" + token + "-first"; // lond answers slowly
    const auto second = "echo:" + token + "-second";
    const auto name = c.lonnet_spool_name(1, first, std::time(nullptr));
    Cluster::LonnetSpool r1;
    std::thread worker1([&] { r1 = c.lonnet_spool(1, first, name); });
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, first) > 0; }, 30s));
    const auto r2 = c.lonnet_spool(1, second, name); // while lond sleeps on the first
    worker1.join();
    EXPECT_TRUE(r1.delayed);
    EXPECT_TRUE(r2.delayed);
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, second) > 0; }, 30s))
        << "the rewritten message was never sent";
    ASSERT_TRUE(wait_delivered(c, name, 10s));
    const auto perm = slurp(c.perm_log());
    EXPECT_EQ(count_lines_with(perm, ":S:h1:" + first + ":"), 1U) << perm;
    EXPECT_EQ(count_lines_with(perm, ":S:h1:" + second + ":"), 1U) << perm;
    EXPECT_EQ(count_lines_with(perm, ":D:h1:"), count_lines_with(perm, ":S:h1:")) << perm;
    EXPECT_EQ(times_received(c, 1, first), 1);
    EXPECT_EQ(times_received(c, 1, second), 1);
}

// A delayed message that makes lond drop the link (a handler that dies)
// is set aside after --spool-max-attempts (3) such deaths; meanwhile the
// link comes back for everyone else and the backlog behind it flows. The
// live client plays lonnet: one retry on con_lost, then USR1 (reconlonc).
TEST(Lonnet, PoisonMessageIsSetAsideAndThePeerKeepsServing) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const std::string poison = "100.clo\x1bse.h1"; // a control character in its name
    c.spool_file(poison, "close\n");
    for (int i = 0; i < 5; ++i) {
        c.spool_file(std::to_string(200 + i) + ".after.h1",
                     "echo:after" + std::to_string(i) + "\n");
    }
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::atomic<int> ok_after_set_aside{0};
    std::thread live([&] {
        for (int i = 0; !stop; ++i) {
            const auto token = "live" + std::to_string(i);
            auto r = c.request(1, "echo:" + token, 5s);
            if (r != token) {
                r = c.request(1, "echo:" + token, 5s); // lonnet's reply(): once more
            }
            if (r == token) {
                ++ok;
                if (std::filesystem::exists(c.spool() / (poison + ".bad"))) {
                    ++ok_after_set_aside;
                }
            } else {
                ++failed;
                ::kill(c.lonc_pid(), SIGUSR1); // reconlonc
            }
            std::this_thread::sleep_for(20ms);
        }
    });
    const auto t0 = Clock::now();
    const bool set_aside =
        wait_until([&] { return std::filesystem::exists(c.spool() / (poison + ".bad")); }, 20s);
    while (since(t0) < 20) { // the issue's window: a dozen connects at most in 20 s
        std::this_thread::sleep_for(100ms);
    }
    stop = true;
    live.join();
    EXPECT_TRUE(set_aside);
    EXPECT_LE(connects(c, 1), 12);
    // Three counted deaths set it aside. A death on a link opened on demand
    // for the live traffic counts only once a newer connection is answered,
    // so one send may go uncounted: bounded, never open-ended.
    EXPECT_GE(times_received(c, 1, "close"), 3);
    EXPECT_LE(times_received(c, 1, "close"), 5);
    std::printf("poison: %ld connects, %ld sends; live requests: %d answered (%d after it was "
                "set aside), %d failed\n",
                connects(c, 1), times_received(c, 1, "close"), ok.load(), ok_after_set_aside.load(),
                failed.load());
    EXPECT_LE(failed.load(), 6);
    EXPECT_GT(ok_after_set_aside.load(), 0);
    const auto perm = slurp(c.perm_log());
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(count_lines_with(perm, ":S:h1:echo:after" + std::to_string(i) + ":"), 1U);
    }
    const auto log = c.log();
    EXPECT_EQ(count_lines_with(log, R"(CRITICAL: Delayed message 100.clo\x1bse.h1)"), 1U) << log;
    EXPECT_EQ(log.find('\x1b'), std::string::npos) << "a raw control character in lonc.log";
}

// A TCP reset and a malformed enc: reply count against the message the
// same way; a timeout does not (lond is slow, the message may be fine).
TEST(Lonnet, ResetsAndMalformedRepliesCountAgainstAMessageTimeoutsDoNot) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.spool_file("100.reset.h1", "reset\n");
    c.spool_file("101.badenc.h1", "badenc\n");
    c.spool_file("102.slow.h1", "sleep:5000:slow\n");
    c.start_lonc({"--request-timeout", "0.5"});
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_until(
        [&] {
            return std::filesystem::exists(c.spool() / "100.reset.h1.bad") &&
                   std::filesystem::exists(c.spool() / "101.badenc.h1.bad");
        },
        20s));
    EXPECT_EQ(times_received(c, 1, "reset"), 3);
    EXPECT_EQ(times_received(c, 1, "badenc"), 3);
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, "sleep:5000:slow") >= 4; }, 20s));
    EXPECT_TRUE(std::filesystem::exists(c.spool() / "102.slow.h1"));
    EXPECT_FALSE(std::filesystem::exists(c.spool() / "102.slow.h1.bad"));
}

// A delayed message lond hangs on (never answers) is not blamed for it:
// it is never set aside. But it is not sent again straight after the
// reconnect its timeout forced either: it waits 1, 2, 4, ... request
// timeouts, so the live requests behind it are held up less and less.
TEST(Lonnet, MessageLondHangsOnWaitsLongerAfterEachTimeoutAndIsNeverSetAside) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto hang = "sleep:600000:" + unique_token("hang");
    c.spool_file("100.hang.h1", hang + "\n");
    c.start_lonc({"--request-timeout", "1", "--retry-min", "0.2", "--retry-max", "1"});
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, hang) > 0; }, 10s));
    const auto t0 = Clock::now();
    int ok = 0;
    while (since(t0) < 12) { // live traffic as lonnet sends it: one retry on con_lost
        const auto token = "live" + std::to_string(ok);
        auto r = c.request(1, "echo:" + token, 5s);
        if (r != token) {
            r = c.request(1, "echo:" + token, 5s);
        }
        ok += r == token ? 1 : 0;
        std::this_thread::sleep_for(50ms);
    }
    // Sent again at once after each reconnect, it would go out about once
    // a second; waiting 1, 2, 4, 8 s, at most 4 or 5 times in these 12 s.
    const auto sends = times_received(c, 1, hang);
    std::printf("hung message sent %ld times in 12 s; %d live requests answered\n", sends, ok);
    EXPECT_GE(sends, 2) << "never sent again";
    EXPECT_LE(sends, 6);
    EXPECT_GT(ok, 0);
    EXPECT_TRUE(std::filesystem::exists(c.spool() / "100.hang.h1"));
    EXPECT_FALSE(std::filesystem::exists(c.spool() / "100.hang.h1.bad"));
    const auto log = c.log();
    EXPECT_EQ(lines_with(log, "did not answer delayed message", "100.hang.h1"), 1U) << log;
    EXPECT_EQ(lines_with(log, "Timeout:", hang), 0U) << "one line per timeout: " << log;
}

// lond answered; then delayed/ turns read-only, so the file can be neither
// renamed nor removed. It is not sent again (rescans, a new link), one
// CRITICAL line says so, and once delayed/ is writable the S line follows.
TEST(Lonnet, DeliveredMessageIsNotSentAgainWhileDelayedIsReadOnly) {
    Cluster c({.hosts = 2, .start_lonc = false});
    SmallTmpfs fs(c.spool(), "1m", 0777);
    c.start_lonc({"--spool-rescan", "0.3"});
    ASSERT_TRUE(c.wait_all_sockets());
    const auto cmd = "sleep:3000:" + unique_token("ro");
    c.spool_file("300.ro.h1", cmd + "\n");
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, cmd) > 0; }, 20s));
    fs.set_read_only(true); // before lond's answer arrives
    ASSERT_TRUE(c.wait_log(R"(CRITICAL: .*300\.ro\.h1)", 10s));
    // A new link scans delayed/ at once; then a few rescans.
    c.kill_sim(1);
    ASSERT_TRUE(c.wait_no_socket(1));
    c.start_sim(1);
    ASSERT_TRUE(c.wait_socket(1));
    EXPECT_EQ(c.request(1, "echo:after-the-new-link"), "after-the-new-link");
    std::this_thread::sleep_for(1500ms); // five rescans
    EXPECT_EQ(times_received(c, 1, cmd), 1) << "a delivered message was sent again";
    EXPECT_EQ(lines_with(c.log(), "CRITICAL", "300.ro.h1"), 1U) << c.log();
    fs.set_read_only(false);
    ASSERT_TRUE(wait_delivered(c, "300.ro.h1", 10s));
    ASSERT_TRUE(wait_until(
        [&] { return count_lines_with(slurp(c.perm_log()), ":S:h1:" + cmd + ":") == 1; }, 10s));
    EXPECT_EQ(times_received(c, 1, cmd), 1);
}

// lond answered, but lonnet.perm.log is on a full disk, and its last page
// has room for only the start of the S line. The message is not sent
// again, one CRITICAL line says what failed, and once there is room there
// is exactly one S line, and it is whole.
TEST(Lonnet, FullLogDiskDelaysTheSLineButNeverResendsOrBreaksTheLog) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto logs = c.dir() / "logs";
    SmallTmpfs fs(logs, "64k");
    {
        // lonnet's lines, ending 10 bytes short of a page.
        const std::string head = std::to_string(std::time(nullptr)) + ":D:hz:echo:";
        const std::string tail = ":Thu Jan  1 00:00:00 1970\n";
        c.dir().write("logs/lonnet.perm.log",
                      head + std::string(4096 - 10 - head.size() - tail.size(), 'p') + tail);
        ASSERT_EQ(::chown(c.perm_log().c_str(), Cluster::www_uid(), static_cast<gid_t>(-1)), 0);
    }
    c.start_lonc({"--spool-rescan", "0.3"});
    ASSERT_TRUE(c.wait_all_sockets());
    fill_up(logs);
    const auto cmd = "echo:" + unique_token("full");
    c.spool_file("400.full.h1", cmd + "\n");
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, cmd) > 0; }, 10s));
    // lonc.log is on the full disk too: its copy on stderr tells.
    const auto stderr_file = c.dir() / "lonc.stderr";
    ASSERT_TRUE(wait_until(
        [&] { return slurp(stderr_file).find("lonnet.perm.log") != std::string::npos; }, 10s));
    c.kill_sim(1); // a new link scans delayed/ at once
    c.start_sim(1);
    ASSERT_TRUE(c.wait_socket(1));
    EXPECT_EQ(c.request(1, "echo:after-the-new-link"), "after-the-new-link");
    std::this_thread::sleep_for(1500ms); // five rescans
    EXPECT_EQ(times_received(c, 1, cmd), 1) << "a delivered message was sent again";
    std::filesystem::remove(logs / "filler");
    ASSERT_TRUE(wait_until(
        [&] { return count_lines_with(slurp(c.perm_log()), ":S:h1:" + cmd + ":") == 1; }, 10s));
    ASSERT_TRUE(wait_delivered(c, "400.full.h1", 10s));
    EXPECT_EQ(count_lines_with(slurp(c.perm_log()), ":S:h1:" + cmd + ":"), 1U);
    EXPECT_EQ(times_received(c, 1, cmd), 1);
    expect_whole_perm_lines(c, {"h0", "h1", "hz"});
    EXPECT_EQ(lines_with(slurp(stderr_file), "CRITICAL", "lonnet.perm.log"), 1U)
        << slurp(stderr_file);
}

// The S line of a delivery whose record had to wait is written while the
// link is down, as soon as the disk has room, and the <name>.sent marker
// goes with it: after the log is rotated, the next link's scan does not
// take the marker for an unrecorded delivery and write a second S line.
TEST(Lonnet, SLineWrittenWhileTheLinkIsDownIsNotWrittenAgainAfterTheLogIsRotated) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto logs = c.dir() / "logs";
    SmallTmpfs fs(logs, "64k");
    c.start_lonc({"--spool-rescan", "0.3"});
    ASSERT_TRUE(c.wait_all_sockets());
    fill_up(logs);
    const auto cmd = "echo:" + unique_token("rot");
    c.spool_file("500.rot.h1", cmd + "\n");
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, cmd) > 0; }, 10s));
    ASSERT_TRUE(
        wait_until([&] { return std::filesystem::exists(c.spool() / "500.rot.h1.sent"); }, 10s));
    c.kill_sim(1);
    ASSERT_TRUE(c.wait_no_socket(1));
    std::filesystem::remove(logs / "filler");
    ASSERT_TRUE(wait_until(
        [&] { return count_lines_with(slurp(c.perm_log()), ":S:h1:" + cmd + ":") == 1; }, 10s))
        << "no S line while the link is down";
    std::filesystem::rename(c.perm_log(), logs / "lonnet.perm.log.1"); // logrotate
    c.start_sim(1);
    ASSERT_TRUE(c.wait_socket(1));
    EXPECT_EQ(c.request(1, "echo:after-the-new-link"), "after-the-new-link");
    ASSERT_TRUE(wait_delivered(c, "500.rot.h1", 10s));
    std::this_thread::sleep_for(1000ms); // three rescans
    const auto records = count_lines_with(slurp(logs / "lonnet.perm.log.1"), ":S:h1:" + cmd + ":") +
                         count_lines_with(slurp(c.perm_log()), ":S:h1:" + cmd + ":");
    EXPECT_EQ(records, 1U);
    EXPECT_EQ(times_received(c, 1, cmd), 1);
}

// lond answered a message whose file someone removed meanwhile (nothing to
// rename to a marker), and its S line cannot be written (a full disk). A
// lonc stopped before the disk has room leaves a <name>.sent marker, and
// the next one writes the S line from it.
TEST(Lonnet, SLineOfADeliveryWhoseFileWasRemovedSurvivesAStop) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto logs = c.dir() / "logs";
    SmallTmpfs fs(logs, "64k");
    c.start_lonc({"--spool-rescan", "0.3"});
    ASSERT_TRUE(c.wait_all_sockets());
    const auto cmd = "sleep:2000:" + unique_token("gone");
    c.spool_file("600.gone.h1", cmd + "\n");
    ASSERT_TRUE(wait_until([&] { return times_received(c, 1, cmd) > 0; }, 10s));
    fill_up(logs);                                      // before lond's answer...
    std::filesystem::remove(c.spool() / "600.gone.h1"); // ...and the file gone
    const auto stderr_file = c.dir() / "lonc.stderr";
    ASSERT_TRUE(wait_until(
        [&] { return slurp(stderr_file).find("lonnet.perm.log") != std::string::npos; }, 10s))
        << "the S line did not fail";
    ASSERT_TRUE(c.stop_lonc().has_value());
    EXPECT_EQ(count_lines_with(slurp(c.perm_log()), ":S:h1:" + cmd + ":"), 0U);
    std::filesystem::remove(logs / "filler");
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_until(
        [&] { return count_lines_with(slurp(c.perm_log()), ":S:h1:" + cmd + ":") == 1; }, 10s))
        << slurp(c.perm_log());
    EXPECT_TRUE(wait_delivered(c, "600.gone.h1", 5s));
    EXPECT_EQ(times_received(c, 1, cmd), 1);
}

// lonnet's reconlonc sends USR1 on every critical con_lost: a storm of
// them retries a down link at most once per --retry-min.
TEST(Lonnet, Usr1StormRetriesADownLinkAtMostOncePerRetryMin) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.kill_sim(1);
    c.start_sim(1, {"--refuse-handshake"});
    c.start_lonc({"--retry-min", "1", "--retry-max", "2"});
    ASSERT_TRUE(c.wait_socket(0));
    ASSERT_TRUE(wait_until([&] { return connects(c, 1) > 0; }, 10s));
    const auto before = connects(c, 1);
    const auto t0 = Clock::now();
    while (since(t0) < 3) {
        ::kill(c.lonc_pid(), SIGUSR1);
        std::this_thread::sleep_for(10ms);
    }
    const auto during = connects(c, 1) - before;
    std::printf("%ld connects in 3 s of USR1 every 10 ms\n", during);
    // Its own backoff (>= 0.5 s jittered) plus USR1 no sooner than 1 s
    // after the last attempt: at most 7 in 3 s.
    EXPECT_LE(during, 8);
    EXPECT_GE(during, 1);
}

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
        .count();
}

// One live request: its token, when its client sent it and when the reply
// came (steady clock = CLOCK_MONOTONIC, lond-sim's --log-times).
struct LiveRequest {
    std::string token;
    std::int64_t sent_us = 0;
    std::int64_t replied_us = 0;
};

// clients threads, each sending echo requests one after the other on its own
// connection to host 1 for duration.
std::vector<LiveRequest> live_traffic(Cluster& c, int clients, std::chrono::milliseconds duration) {
    std::vector<std::vector<LiveRequest>> per(static_cast<std::size_t>(clients));
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    const auto end = Clock::now() + duration;
    for (int t = 0; t < clients; ++t) {
        threads.emplace_back([&, t] {
            auto conn = c.client(1);
            if (!conn) {
                ++wrong;
                return;
            }
            for (int i = 0; Clock::now() < end; ++i) {
                LiveRequest l{"live" + std::to_string(t) + "-" + std::to_string(i), now_us(), 0};
                const auto r = conn->request("echo:" + l.token);
                l.replied_us = now_us();
                wrong += r == l.token ? 0 : 1;
                per[static_cast<std::size_t>(t)].push_back(std::move(l));
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(wrong.load(), 0);
    std::vector<LiveRequest> all;
    for (auto& v : per) {
        all.insert(all.end(), v.begin(), v.end());
    }
    return all;
}

// The fairness is counted, not timed, so a busy machine cannot fake it: a
// spooled message goes on the wire behind the live requests already waiting,
// one at a time, so lond handles at most a few spooled messages between a
// live request's sending and its own handling, however slowly anything
// runs. A backlog that jumps the queue, or goes out many at a time, puts
// dozens or thousands there.
TEST(Spool, BacklogSharesTheLinkFairlyWithLiveTraffic) {
    // lond-sim takes 200 us a request, like a lond doing disk work, and
    // stamps each request it handles with the time. One link, which the
    // backlog and the live requests share (with links on demand each would
    // have its own, and there would be no sharing to count).
    Cluster c({.hosts = 2,
               .sim_args = {"--service-us", "200", "--log-times"},
               .lonc_args = {"--max-connections", "1"}});
    const int clients = 8;
    // The backlog builds up while the peer is down, then drains once it is back.
    const std::size_t backlog = 5000;
    c.kill_sim(1);
    ASSERT_TRUE(c.wait_no_socket(1));
    for (std::size_t i = 0; i < backlog; ++i) {
        c.spool_file(std::to_string(1000 + i) + ".fair.h1",
                     "echo:spooled" + std::to_string(i) + "\n");
    }
    c.start_sim(1);
    ASSERT_TRUE(c.wait_socket(1));
    const auto live = live_traffic(c, clients, 2s);
    ASSERT_FALSE(live.empty());

    // When lond-sim handled each live request, and each spooled one.
    std::map<std::string, std::int64_t> handled; // live token -> time
    std::vector<std::int64_t> spooled;           // times, in order
    for (const auto& row : c.sim_requests(1)) {
        if (row.size() < 4) {
            continue;
        }
        const auto when = std::stoll(row[0]);
        if (row[3].rfind("echo:spooled", 0) == 0) {
            spooled.push_back(when);
        } else if (row[3].rfind("echo:live", 0) == 0) {
            handled[row[3].substr(5)] = when;
        }
    }
    std::sort(spooled.begin(), spooled.end());
    auto spooled_between = [&](std::int64_t from, std::int64_t to) {
        return std::lower_bound(spooled.begin(), spooled.end(), to) -
               std::lower_bound(spooled.begin(), spooled.end(), from);
    };
    std::vector<long> ahead; // spooled messages handled while a live one waited
    for (const auto& l : live) {
        const auto it = handled.find(l.token);
        ASSERT_NE(it, handled.end()) << l.token << " never reached lond";
        ahead.push_back(spooled_between(l.sent_us, it->second));
    }
    std::sort(ahead.begin(), ahead.end());
    const auto first = std::min_element(live.begin(), live.end(), [](auto& a, auto& b) {
                           return a.sent_us < b.sent_us;
                       })->sent_us;
    const auto last = std::max_element(live.begin(), live.end(), [](auto& a, auto& b) {
                          return a.replied_us < b.replied_us;
                      })->replied_us;
    const auto during = spooled_between(first, last);
    const auto at = [&](double q) {
        return ahead[std::min(ahead.size() - 1,
                              static_cast<std::size_t>(q * double(ahead.size())))];
    };
    std::printf("%zu live requests; spooled messages lond handled while one waited: median %ld, "
                "p90 %ld, p99 %ld, max %ld; %ld spooled meanwhile (backlog %zu)\n",
                live.size(), at(0.5), at(0.9), at(0.99), ahead.back(), during, backlog);
    // Fair: the one on the wire when a live request came, and the next one
    // if it was queued before lonc read the request. The tail is left to the
    // scheduler: a client preempted between its clock and its write() sees
    // the spooled messages of that pause. A backlog that goes ahead of the
    // live requests puts about one per request ahead (8 clients: median 4),
    // one that goes out many at a time dozens or thousands.
    EXPECT_LE(at(0.5), 2) << "the backlog must not go ahead of live requests";
    EXPECT_LE(at(0.9), 3) << "the backlog must not go ahead of live requests";
    EXPECT_GE(during * 4 * clients, static_cast<long>(live.size()))
        << "the backlog must keep moving under live load";
    ASSERT_TRUE(wait_until([&] { return spool_names(c).empty(); }, 60s));
    EXPECT_EQ(count_lines_with(slurp(c.perm_log()), ":S:h1:"), backlog);
}

// At least once, never lost, recorded exactly once: thousands of messages,
// lonc SIGKILLed at random moments, peers killed and restarted meanwhile.
TEST(Spool, NothingIsLostThroughKillsAndPeerRestarts) {
    const int peers = 3;
    const int per_peer = full_size() ? 1500 : 400;
    const int lonc_kills = full_size() ? 30 : 8;
    // lond takes 15 ms a message: a peer's backlog takes longer to drain
    // than the kill sequence lasts, so every kill lands while delivery is
    // going on.
    Cluster c({.hosts = peers + 1, .sim_args = {"--service-us", "15000"}, .start_lonc = false});
    std::map<std::string, int> host_of; // token -> host
    for (int h = 1; h <= peers; ++h) {
        for (int i = 0; i < per_peer; ++i) {
            const auto token = "k" + std::to_string(h) + "-" + std::to_string(i);
            host_of[token] = h;
            c.spool_file(std::to_string(1000000 + i) + ".echo.h" + std::to_string(h),
                         "echo:" + token + "\n");
        }
    }
    // Made bad on purpose: old and empty.
    const auto bad = c.spool_file("5.bad.h1", "");
    make_old(bad, 600);

    std::mt19937 rng(12345);
    int peer_kills = 0;
    int kills_mid_delivery = 0;
    for (int k = 0; k < lonc_kills; ++k) {
        c.start_lonc();
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
        if (k % 2 == 1) { // a peer dies and comes back meanwhile
            const int h = 1 + static_cast<int>(rng() % peers);
            c.kill_sim(h);
            ++peer_kills;
            std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
            c.start_sim(h);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
        kills_mid_delivery += spool_names(c).size() > 1 ? 1 : 0;
        ::kill(-c.lonc().pid(), SIGKILL); // the whole process group: parent and children
        c.lonc().wait(5s);
        wait_until([&] { return c.children().empty(); }, 5s);
    }
    c.start_lonc();
    ASSERT_TRUE(wait_until(
        [&] { return spool_names(c) == std::vector<std::string>{"5.bad.h1.bad"}; }, 120s))
        << spool_names(c).size() << " files left";

    std::map<std::string, int> seen;
    for (int h = 1; h <= peers; ++h) {
        for (const auto& r : received(c, h)) {
            if (r.rfind("echo:k", 0) == 0) {
                ++seen[r.substr(5)];
            }
        }
    }
    const auto perm = slurp(c.perm_log());
    int duplicates = 0;
    for (const auto& [token, h] : host_of) {
        ASSERT_GE(seen[token], 1) << token << " never reached its peer";
        duplicates += seen[token] - 1;
        ASSERT_EQ(count_lines_with(perm, ":S:h" + std::to_string(h) + ":echo:" + token + ":"), 1U)
            << token;
    }
    EXPECT_EQ(count_lines_with(perm, ":S:"), host_of.size());
    const int bound = (lonc_kills + peer_kills) * peers * 1;
    std::printf("%zu messages, %d lonc kills (%d during delivery), %d peer kills: %d duplicate "
                "deliveries (bound %d), 0 lost\n",
                host_of.size(), lonc_kills, kills_mid_delivery, peer_kills, duplicates, bound);
    EXPECT_LE(duplicates, bound);
    EXPECT_GE(kills_mid_delivery, lonc_kills / 2) << "the kills must hit a busy spool";
}

} // namespace
} // namespace lonc::test
