// The supervisor: start, users, single instance, config errors, probes,
// restarts, signals and status files, against the real daemon.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <fstream>
#include <future>
#include <regex>
#include <set>
#include <signal.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "cluster.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

bool alive(pid_t pid) {
    return pid > 0 && ::kill(pid, 0) == 0;
}

json status_json(const Cluster& c) {
    try {
        return json::parse(slurp(c.status_json()));
    } catch (const std::exception&) {
        return json::object();
    }
}

// Sends USR1 and waits for a new loncstatus.json generation.
json fresh_status(const Cluster& c) {
    const auto before = status_json(c).value("generation", 0);
    ::kill(c.lonc_pid(), SIGUSR1);
    json now;
    EXPECT_TRUE(wait_until(
        [&] {
            now = status_json(c);
            return now.value("generation", 0) > before;
        },
        5s));
    return now;
}

std::map<std::string, pid_t> child_pids(const json& status) {
    std::map<std::string, pid_t> out;
    for (const auto& p : status["peers"]) {
        if (!p["pid"].is_null()) {
            out[p["id"].get<std::string>()] = p["pid"].get<pid_t>();
        }
    }
    return out;
}

// ------------------------------------------------------------------ start

TEST(Start, DaemonRunsAsWwwAndTermLeavesNothingBehind) {
    Cluster c({.hosts = 3, .foreground = false});
    const pid_t parent = c.lonc_pid();
    ASSERT_TRUE(alive(parent));
    const auto kids = c.children();
    EXPECT_EQ(kids.size(), 3U);
    EXPECT_NE(process_uid(parent), 0); // root was dropped
    EXPECT_EQ(process_uid(parent), static_cast<long>(c.www_uid()));
    for (const auto pid : kids) {
        EXPECT_EQ(process_uid(pid), process_uid(parent));
    }
    EXPECT_EQ(c.request(1, "ping"), c.id(1));
    // The launching process exited 0 once the daemon was up.
    auto st = c.lonc().wait(5s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->exited(0)) << st->to_string();

    ::kill(parent, SIGTERM);
    ASSERT_TRUE(wait_until([&] { return !alive(parent); }, 10s));
    for (const auto pid : kids) {
        EXPECT_FALSE(alive(pid));
    }
    for (int h = 0; h < 3; ++h) {
        EXPECT_FALSE(std::filesystem::exists(c.socket(h)));
    }
    EXPECT_FALSE(std::filesystem::exists(c.pid_file()));
    EXPECT_TRUE(c.log_contains("CRITICAL: Shutting down"));
}

TEST(Start, WrongUserExitsFour) {
    Cluster c({.hosts = 2, .start_lonc = false});
    // Not root and not --user: exit 4.
    SpawnOptions so;
    so.stderr_file = (c.dir() / "wrong-user.out").string();
    auto p = Process::spawn({"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
                             "--clear-groups", lonc_binary(), "-c", c.conf().string(), "--user",
                             "www", "--mail-command", "", "-f"},
                            so);
    auto status = p.wait(10s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(status->exited(4)) << status->to_string();
    EXPECT_NE(slurp(so.stderr_file).find("must run as user www"), std::string::npos);
    // No such user: also 4.
    auto none = c.run_lonc({"-c", c.conf().string(), "--user", "no-such-user-xyz", "-f"});
    EXPECT_TRUE(none.exited(4)) << none.to_string();
}

TEST(Start, FatalStartErrorIsMailedToTheAdmins) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto mail = c.dir() / "mail.txt";
    auto st = c.run_lonc({"-c", c.conf().string(), "--user", "no-such-user-xyz", "-f",
                          "--mail-command", "cat > " + mail.string()});
    EXPECT_TRUE(st.exited(4));
    const auto text = slurp(mail);
    EXPECT_NE(text.find("To: adm@example.invalid"), std::string::npos) << text;
    EXPECT_NE(text.find("Subject: LON: h0 User ID mismatch"), std::string::npos) << text;
}

// lonc blocks the signals it reads from a signalfd and ignores SIGPIPE; the
// mailer it starts must not inherit either (a sendmail that cannot be
// TERMed, or that never learns of a broken pipe).
TEST(Start, TheMailerRunsWithNoSignalBlockedOrIgnored) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto masks = c.dir() / "masks.txt";
    auto st =
        c.run_lonc({"-c", c.conf().string(), "--user", "no-such-user-xyz", "-f", "--mail-command",
                    "exec grep -E '^Sig(Blk|Ign):' /proc/self/status > " + masks.string()});
    EXPECT_TRUE(st.exited(4));
    const auto text = slurp(masks);
    auto mask = [&](const std::string& field) {
        const auto at = text.find(field + ":\t");
        return at == std::string::npos
                   ? ~0ULL
                   : std::stoull(text.substr(at + field.size() + 2), nullptr, 16);
    };
    // Bit n-1 is signal n. (glibc's own signals 32 and 33 may show as
    // ignored: posix_spawn leaves them so.)
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD, SIGPIPE}) {
        const auto bit = 1ULL << static_cast<unsigned>(sig - 1);
        EXPECT_EQ(mask("SigBlk") & bit, 0U) << "signal " << sig << " blocked:\n" << text;
        EXPECT_EQ(mask("SigIgn") & bit, 0U) << "signal " << sig << " ignored:\n" << text;
    }
}

TEST(Start, SecondInstanceExitsThree) {
    Cluster c({.hosts = 2});
    auto st = c.run_lonc({"-c", c.conf().string(), "--user", "www", "--mail-command", "", "-f"});
    EXPECT_TRUE(st.exited(3)) << st.to_string();
    EXPECT_NE(slurp(c.dir() / "run.out").find("already running"), std::string::npos);
    EXPECT_EQ(c.request(1, "ping"), c.id(1)); // the first one is untouched
}

TEST(Start, LivePerlLoncInThePidFileExitsThree) {
    Cluster c({.hosts = 2, .start_lonc = false});
    // A live process called lonc (as the Perl one is: perl .../lonc).
    const auto fake = c.dir() / "lonc";
    std::filesystem::copy_file("/bin/sleep", fake);
    auto perl_lonc = Process::spawn({fake.string(), "30"});
    { std::ofstream(c.pid_file()) << perl_lonc.pid() << "\n"; }
    auto st = c.run_lonc({"-c", c.conf().string(), "--user", "www", "--mail-command", "", "-f"});
    EXPECT_TRUE(st.exited(3)) << st.to_string();
    EXPECT_NE(slurp(c.dir() / "run.out").find("pid " + std::to_string(perl_lonc.pid())),
              std::string::npos);
}

TEST(Start, StalePidFileIsTakenOver) {
    Cluster c({.hosts = 2, .start_lonc = false});
    pid_t dead = 0;
    {
        auto p = Process::spawn({"/bin/true"});
        dead = p.pid();
        p.wait(5s);
    }
    { std::ofstream(c.pid_file()) << dead << "\n"; }
    // Also a live pid that is not a lonc (pid reuse): not "running".
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    EXPECT_EQ(c.lonc_pid(), c.lonc().pid());
}

// ----------------------------------------------------------------- config

TEST(Config, MissingKeyIsFatalAtStartAndInCheckConfig) {
    Cluster c({.hosts = 2, .start_lonc = false});
    auto text = slurp(c.conf());
    text = std::regex_replace(text, std::regex("PerlSetVar lonSockDir [^\n]*\n"), "");
    c.dir().write("access.conf", text);
    auto check = c.run_lonc({"-c", c.conf().string(), "--check-config"});
    EXPECT_TRUE(check.exited(1));
    EXPECT_NE(slurp(c.dir() / "run.out").find("required key lonSockDir is missing"),
              std::string::npos);
    auto start = c.run_lonc({"-c", c.conf().string(), "--user", "www", "--mail-command", "", "-f"});
    EXPECT_TRUE(start.exited(1));
}

TEST(Config, OwnHostMissingIsFatal) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.dir().write("hosts.tab", c.id(1) + ":d:library:x:" + c.ip(1) + "\n");
    auto st = c.run_lonc({"-c", c.conf().string(), "--user", "www", "--mail-command", "", "-f"});
    EXPECT_TRUE(st.exited(1));
    EXPECT_NE(slurp(c.dir() / "run.out").find("this host's id 'h0'"), std::string::npos);
}

TEST(Config, BadHostsLinesAreWarningsAtStartAndErrorsInCheckConfig) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.write_hosts(2, "../evil:d:library:x:127.0.0.1\nshort:line\n");
    auto check = c.run_lonc({"-c", c.conf().string(), "--check-config"});
    EXPECT_TRUE(check.exited(5)); // lonc starts, skipping them; a reload would refuse them
    const auto report = slurp(c.dir() / "run.out");
    EXPECT_NE(report.find("hosts.tab:4: unsafe host id '../evil'"), std::string::npos) << report;
    EXPECT_NE(report.find("hosts.tab:5: expected id:domain:role:hostname:ip"), std::string::npos);
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    EXPECT_TRUE(c.log_contains(R"(WARNING: .*hosts.tab:4: unsafe host id)"));
    EXPECT_FALSE(std::filesystem::exists(c.dir() / "evil"));
}

TEST(Config, CheckConfigListsPeersAndPaths) {
    Cluster c({.hosts = 3, .start_lonc = false});
    auto st = c.run_lonc({"-c", c.conf().string(), "-t"});
    EXPECT_TRUE(st.exited(0));
    const auto out = slurp(c.dir() / "run.out");
    EXPECT_NE(out.find("configuration OK"), std::string::npos) << out;
    EXPECT_NE(out.find(c.ip(2)), std::string::npos);
    EXPECT_NE(out.find("(this host)"), std::string::npos);
}

TEST(Config, CheckConfigTriesEveryPathAsTheUserLoncRunsAs) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto d = c.dir().path();
    std::string out;
    auto check = [&] {
        auto st = c.run_lonc({"-c", c.conf().string(), "-t", "--user", "www"});
        out = slurp(c.dir() / "run.out");
        return st;
    };
    ASSERT_TRUE(check().exited(0)) << out;
    EXPECT_EQ(out.find("warnings:"), std::string::npos) << out;

    // The status directory gone (lonc makes it) and its parent writable:
    // fine. Its parent read-only for www too: a warning, lonc still starts.
    std::filesystem::remove_all(d / "html/lon-status");
    ASSERT_EQ(::chmod((d / "html").c_str(), 0777), 0);
    EXPECT_TRUE(check().exited(0)) << out;
    EXPECT_EQ(out.find("warnings:"), std::string::npos) << out;
    ASSERT_EQ(::chmod((d / "html").c_str(), 0555), 0);
    EXPECT_TRUE(check().exited(0)) << out;
    EXPECT_NE(out.find("status directory " + (d / "html/lon-status").string() +
                       ": missing, and its parent: Permission denied (as www)"),
              std::string::npos)
        << out;

    // The log directory's mode is fine, but its parent is a root-owned 0700
    // directory www cannot search: lonc could not take its pid file, so -t
    // must not say OK (mode bits alone would).
    const auto logs = slurp(c.conf());
    c.dir().make_dir("private", "", 0700);
    (void)c.dir().make_dir("private/logs", "www", 0755);
    c.dir().write("access.conf",
                  std::regex_replace(logs, std::regex("PerlSetVar lonDaemons [^\n]*"),
                                     "PerlSetVar lonDaemons " + (d / "private").string()));
    EXPECT_TRUE(check().exited(1)) << out;
    EXPECT_NE(
        out.find("log directory " + (d / "private/logs").string() + ": Permission denied (as www)"),
        std::string::npos)
        << out;
    EXPECT_NE(out.find("configuration has problems"), std::string::npos) << out;
    c.dir().write("access.conf", logs);

    // The socket directory taken from www: a problem, named.
    ASSERT_EQ(::chown((d / "sockets").c_str(), 0, 0), 0);
    ASSERT_EQ(::chmod((d / "sockets").c_str(), 0755), 0);
    EXPECT_TRUE(check().exited(1)) << out;
    EXPECT_NE(
        out.find("socket directory " + (d / "sockets").string() + ": Permission denied (as www)"),
        std::string::npos)
        << out;
}

// ----------------------------------------------------------------- peers

TEST(Peers, UnreachablePeerIsSkippedThenPickedUpByReprobe) {
    Cluster c({.hosts = 3, .start_lonc = false});
    auto drop = std::make_unique<DropRule>(c.ip(2));
    c.start_lonc({"--probe-timeout", "0.5", "--reprobe-interval", "1"});
    ASSERT_TRUE(c.wait_socket(0));
    ASSERT_TRUE(c.wait_socket(1));
    EXPECT_TRUE(c.wait_log("h2 \\(" + c.ip(2) + "\\) is unreachable"));
    EXPECT_FALSE(std::filesystem::exists(c.socket(2)));
    drop.reset();
    EXPECT_TRUE(c.wait_socket(2, 5s));
    EXPECT_EQ(c.request(2, "ping"), c.id(2));
}

TEST(Peers, KilledChildRestartsAloneAndOthersKeepTheirPids) {
    Cluster c({.hosts = 3});
    const auto before = child_pids(fresh_status(c));
    ASSERT_EQ(before.size(), 3U);
    ::kill(before.at("h1"), SIGKILL);
    EXPECT_TRUE(
        c.wait_log("Child " + std::to_string(before.at("h1")) + " for server h1 died: signal 9"));
    ASSERT_TRUE(wait_until([&] { return c.request(1, "ping") == c.id(1); }, 5s));
    const auto after = child_pids(fresh_status(c));
    EXPECT_NE(after.at("h1"), before.at("h1"));
    EXPECT_EQ(after.at("h0"), before.at("h0"));
    EXPECT_EQ(after.at("h2"), before.at("h2"));
}

TEST(Peers, ChildDyingTooOftenIsSkippedUntilUsr1) {
    Cluster c({.hosts = 2, .lonc_args = {"--max-attempts", "3"}});
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(wait_until([&] { return c.request(1, "ping") == c.id(1); }, 10s));
        (void)c.request(1, "close_connection_exit");
    }
    EXPECT_TRUE(c.wait_log("WARNING: Skipped h1 "));
    EXPECT_TRUE(c.wait_no_socket(1, 3s));
    std::this_thread::sleep_for(1s);
    EXPECT_FALSE(std::filesystem::exists(c.socket(1)));
    ::kill(c.lonc_pid(), SIGUSR1);
    EXPECT_TRUE(c.wait_socket(1, 5s));
}

// ---------------------------------------------------------------- signals

TEST(Signals, Usr1WritesStatusFilesAndKeepsLinksThatAreUp) {
    Cluster c({.hosts = 3});
    const auto s1 = fresh_status(c);
    const auto s2 = fresh_status(c);
    ASSERT_EQ(s1["peers"].size(), 3U);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(s1["peers"][i]["link"], "up");
        EXPECT_FALSE(s1["peers"][i]["local_ports"].get<std::string>().empty());
        // USR1 does not touch a link that is up: same TCP connection.
        EXPECT_EQ(s1["peers"][i]["local_ports"], s2["peers"][i]["local_ports"]);
        EXPECT_EQ(s1["peers"][i]["pid"], s2["peers"][i]["pid"]);
    }
    const auto txt = slurp(c.status_txt());
    const std::string t =
        R"([A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4})";
    const std::regex whole("LONC status " + t +
                           " - parent ([0-9]+)\n\n"
                           "\\1\tPARENT\t" +
                           t + ": [^\t\n]*\t(" + t +
                           ": [^\t\n]*)?\n"
                           "([0-9]+\th[0-9]\t" +
                           t + ": link up[^\t\n]*\t" + t + ": [^\t\n]*\n){3}");
    EXPECT_TRUE(std::regex_match(txt, whole)) << txt;
    for (const auto& [id, pid] : child_pids(s2)) {
        EXPECT_NE(txt.find(std::to_string(pid) + "\t" + id + "\t"), std::string::npos);
        EXPECT_TRUE(alive(pid));
    }
    EXPECT_EQ(s2["parent"]["pid"], c.lonc_pid());
}

TEST(Signals, OverlappingUsr1sCoalesce) {
    Cluster c({.hosts = 2});
    const auto before = fresh_status(c)["generation"].get<int>();
    for (int i = 0; i < 20; ++i) {
        ::kill(c.lonc_pid(), SIGUSR1);
    }
    ASSERT_TRUE(wait_until([&] { return status_json(c).value("generation", 0) > before; }, 10s));
    // One more after the storm; without coalescing there would be 21.
    const auto after = fresh_status(c).value("generation", 0);
    EXPECT_LT(after - before, 20);
}

TEST(Signals, HupWithBrokenConfigKeepsServing) {
    Cluster c({.hosts = 2});
    const auto before = child_pids(fresh_status(c));
    c.dir().write("hosts.tab", "garbage without colons\n");
    ::kill(c.lonc_pid(), SIGHUP);
    EXPECT_TRUE(c.wait_log("ERROR: HUP: configuration not reloaded: " + c.hosts_tab().string() +
                           ":1: expected id:domain:role:hostname:ip"));
    EXPECT_EQ(c.request(1, "ping"), c.id(1));
    EXPECT_EQ(child_pids(fresh_status(c)), before);
}

TEST(Signals, SecondTermDuringDrainExitsAtOnce) {
    Cluster c({.hosts = 2});
    auto slow = std::async(std::launch::async, [&] { return c.request(1, "sleep:4000:slow"); });
    ASSERT_TRUE(c.wait_received(1, "sleep:4000:slow"));
    c.lonc().signal(SIGTERM);
    EXPECT_TRUE(c.wait_log(": Shutting down"));
    EXPECT_TRUE(c.lonc().running()); // draining: the slow request is still in flight
    const auto t0 = std::chrono::steady_clock::now();
    c.lonc().signal(SIGTERM);
    auto st = c.lonc().wait(3s);
    ASSERT_TRUE(st.has_value());
    // Not the rest of the slow request's 4 s.
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.5);
    EXPECT_FALSE(std::filesystem::exists(c.pid_file()));
    EXPECT_FALSE(std::filesystem::exists(c.socket(0)));
    EXPECT_TRUE(c.children().empty());
    (void)slow.get();
}

TEST(Signals, TermLetsInFlightRequestsFinish) {
    Cluster c({.hosts = 2});
    auto slow = std::async(std::launch::async, [&] { return c.request(1, "sleep:1000:finished"); });
    ASSERT_TRUE(c.wait_received(1, "sleep:1000:finished"));
    c.lonc().signal(SIGTERM);
    EXPECT_EQ(slow.get(), "finished");
    auto st = c.lonc().wait(10s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->exited(0)) << st->to_string();
}

TEST(Signals, ParentKilledTakesChildrenAndSocketsAlongAndNextStartWorks) {
    Cluster c({.hosts = 3});
    const auto kids = c.children();
    ASSERT_EQ(kids.size(), 3U);
    c.lonc().kill(); // SIGKILL: no cleanup by the parent
    for (const auto pid : kids) {
        EXPECT_TRUE(wait_until([&] { return !alive(pid); }, 10s)) << pid;
    }
    for (int h = 0; h < 3; ++h) {
        EXPECT_TRUE(c.wait_no_socket(h));
    }
    c.start_lonc();
    EXPECT_TRUE(c.wait_all_sockets());
    EXPECT_EQ(c.request(2, "ping"), c.id(2));
}

} // namespace
} // namespace lonc::test
