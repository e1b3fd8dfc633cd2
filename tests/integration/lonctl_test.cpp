// lonctl against the real daemon: send, status, check, reconnect, spool;
// and the Prometheus metrics file.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <pwd.h>
#include <regex>
#include <signal.h>
#include <sstream>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <thread>

#include "cluster.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// The local port of a peer's link, from a fresh status.
std::string local_ports(const Cluster& c, const std::string& id) {
    const auto doc = json::parse(lonctl(c, {"status", "--json"}).out);
    for (const auto& p : doc["peers"]) {
        if (p["id"] == id) {
            return p.value("local_ports", "");
        }
    }
    return "";
}

TEST(Lonctl, SendPrintsTheReplyAndItsExitCodeSaysWhatHappened) {
    Cluster c({.hosts = 2});
    auto r = lonctl(c, {"send", "h1", "ping"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "h1\n");
    r = lonctl(c, {"send", "--encrypt", "h1", "auth:dom:alice:secret"});
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out, "authorized\n");
    r = lonctl(c, {"send", "h1", "no_such_command"});
    EXPECT_EQ(r.code, 0); // a reply, whatever its text
    EXPECT_EQ(r.out, "unknown_cmd\n");
    r = lonctl(c, {"send", "h1", "close"}); // lond hangs up mid-request
    EXPECT_EQ(r.code, 6);                   // peer down
    EXPECT_EQ(r.out, "con_lost\n");
    r = lonctl(c, {"send", "nosuch", "ping"});
    EXPECT_EQ(r.code, 5);
    EXPECT_NE(r.err.find("no such host: nosuch (not in " + c.hosts_tab().string() + ")"),
              std::string::npos)
        << r.err;
    r = lonctl(c, {"send", "h1"});
    EXPECT_EQ(r.code, 1);
    r = lonctl(c, {"send", "h1", "ping", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), json({{"host", "h1"}, {"reply", "h1"}})) << r.out;
    c.kill_sim(1);
    ASSERT_TRUE(c.wait_no_socket(1));
    r = lonctl(c, {"send", "h1", "ping"});
    EXPECT_EQ(r.code, 6); // lonc runs, the link is down
    EXPECT_NE(r.err.find("no socket for h1: cannot connect to " + c.socket(1).string() +
                         ": No such file or directory; lonc runs (pid " +
                         std::to_string(c.lonc_pid()) + ")"),
              std::string::npos)
        << r.err;
    ASSERT_TRUE(c.stop_lonc().has_value());
    r = lonctl(c, {"send", "h0", "ping"});
    EXPECT_EQ(r.code, 3);
    EXPECT_NE(r.err.find("lonc is not running"), std::string::npos) << r.err;
}

TEST(Lonctl, StatusAsksForAFreshGenerationAndPrintsATable) {
    Cluster c({.hosts = 3});
    ASSERT_EQ(c.request(1, "ping"), "h1");
    ASSERT_EQ(c.request(1, "ping"), "h1");
    auto r = lonctl(c, {"status", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto first = json::parse(r.out);
    r = lonctl(c, {"status", "--json"});
    const auto second = json::parse(r.out);
    EXPECT_GT(second["generation"].get<int>(), first["generation"].get<int>());
    // The files are written too, with the same generation.
    EXPECT_EQ(json::parse(slurp(c.status_json()))["generation"], second["generation"]);
    for (const auto& p : second["peers"]) {
        EXPECT_EQ(p["link"], "up") << p.dump();
        if (p["id"] == "h1") {
            EXPECT_EQ(p["requests"], 2);
        }
    }
    r = lonctl(c, {"status"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("PEER"), std::string::npos) << r.out;
    // The links up, of the most the child opens (--max-connections 8).
    for (const char* id : {"h0", "h1", "h2"}) {
        EXPECT_TRUE(std::regex_search(
            r.out,
            std::regex(std::string("\n") + id + R"( +[0-9]+ up [0-9]/8 +[0-9-]+ [0-9:]+ +)")))
            << id << " in\n"
            << r.out;
    }
    // Unlike USR1, it resets nothing and logs no "Trying to establish".
    EXPECT_FALSE(c.log_contains("USR1"));
}

TEST(Lonctl, StatusAndReconnectFailClearlyWhenLoncIsNotRunning) {
    Cluster c({.hosts = 2, .start_lonc = false});
    auto r = lonctl(c, {"status"});
    EXPECT_EQ(r.code, 3);
    EXPECT_NE(r.err.find("lonc is not running"), std::string::npos) << r.err;
    r = lonctl(c, {"reconnect", "h1"});
    EXPECT_EQ(r.code, 3);
    r = lonctl(c, {"check"});
    EXPECT_EQ(r.code, 3);
    EXPECT_NE(r.out.find("not running"), std::string::npos) << r.out;
}

TEST(Lonctl, ControlSocketBelongsToTheDaemonUserOnly) {
    Cluster c({.hosts = 2});
    struct stat st {};
    ASSERT_EQ(::stat((c.dir() / "sockets/.lonc-control").c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777U, 0600U);
    EXPECT_EQ(st.st_uid, Cluster::www_uid());
    c.stop_lonc();
    EXPECT_FALSE(std::filesystem::exists(c.dir() / "sockets/.lonc-control"));
}

TEST(Lonctl, CheckPingsEveryPeerAndReportsTheOneThatIsDown) {
    Cluster c({.hosts = 3});
    auto r = lonctl(c, {"check"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("lonc: running, pid " + std::to_string(c.lonc_pid())), std::string::npos)
        << r.out;
    for (const char* id : {"h0", "h1", "h2"}) {
        EXPECT_TRUE(std::regex_search(r.out, std::regex(std::string(id) + " +ok +ping: " + id)))
            << r.out;
    }
    c.kill_sim(2);
    ASSERT_TRUE(c.wait_no_socket(2));
    r = lonctl(c, {"check", "--json"});
    EXPECT_EQ(r.code, 6) << r.out;
    const auto doc = json::parse(r.out);
    EXPECT_EQ(doc["lonc"]["pid"], c.lonc_pid());
    EXPECT_EQ(doc["configuration"]["ok"], true);
    ASSERT_EQ(doc["peers"].size(), 3U) << r.out;
    EXPECT_EQ(doc["peers"][1], json({{"id", "h1"}, {"ok", true}, {"detail", "ping: h1"}}));
    EXPECT_EQ(doc["peers"][2], json({{"id", "h2"}, {"ok", false}, {"detail", "no socket"}}));
    r = lonctl(c, {"check"});
    EXPECT_EQ(r.code, 6);
    EXPECT_TRUE(std::regex_search(r.out, std::regex("h2 +FAIL +no socket"))) << r.out;
    EXPECT_TRUE(std::regex_search(r.out, std::regex("h1 +ok"))) << r.out;
}

TEST(Lonctl, ReconnectRemakesOnlyThatPeersLink) {
    Cluster c({.hosts = 3});
    const auto h1 = local_ports(c, "h1");
    const auto h2 = local_ports(c, "h2");
    ASSERT_FALSE(h1.empty());
    auto r = lonctl(c, {"reconnect", "h1"});
    EXPECT_EQ(r.code, 0) << r.err;
    ASSERT_TRUE(wait_until(
        [&] {
            const auto now = local_ports(c, "h1");
            return !now.empty() && now != h1;
        },
        5s));
    EXPECT_EQ(local_ports(c, "h2"), h2);
    EXPECT_EQ(c.request(1, "ping"), "h1");
    EXPECT_TRUE(c.log_contains(
        R"(\[h1\] .*INFO: Closing the connection to h1 \(link 1\): reconnect requested by the operator)"));
    // An operator's reconnect is not a failure: loncron counts CRITICAL lines.
    EXPECT_FALSE(c.log_contains(R"(\[h1\] .*CRITICAL)")) << c.log();
    r = lonctl(c, {"reconnect", "nosuch"});
    EXPECT_EQ(r.code, 5);
    r = lonctl(c, {"reconnect", "h2", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), json({{"host", "h2"}, {"reconnecting", true}})) << r.out;
}

TEST(Lonctl, ReconnectRestartsASkippedPeerAtOnce) {
    Cluster c({.hosts = 2, .lonc_args = {"--max-attempts", "1"}});
    (void)c.request(1, "close_connection_exit");
    ASSERT_TRUE(c.wait_log("WARNING: Skipped h1 "));
    ASSERT_TRUE(c.wait_no_socket(1, 3s));
    const auto r = lonctl(c, {"reconnect", "h1"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(c.wait_socket(1, 5s));
}

TEST(Lonctl, SpoolListRetryAndPurgeBad) {
    Cluster c({.hosts = 3, .start_lonc = false});
    c.spool_file("100.ok.h1", "echo:waiting\n");
    c.spool_file("101.fixed.h1.bad", "echo:fixed-by-the-operator\n");
    c.spool_file("102.hopeless.h2.bad", "");
    c.spool_file("lock", "not a spool file\n");
    auto r = lonctl(c, {"spool", "list"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(h1 +pending .* 100\.ok\.h1)"))) << r.out;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(h1 +bad .* 101\.fixed\.h1\.bad)"))) << r.out;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(h2 +bad .* 102\.hopeless\.h2\.bad)")))
        << r.out;
    EXPECT_EQ(r.out.find("lock"), std::string::npos);
    EXPECT_NE(r.out.find("1 pending, 2 bad"), std::string::npos) << r.out;
    r = lonctl(c, {"spool", "list", "h2"});
    EXPECT_NE(r.out.find("0 pending, 1 bad"), std::string::npos) << r.out;

    c.start_lonc({"--spool-rescan", "300"}); // only inotify can bring the retried file
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(wait_until([&] { return !std::filesystem::exists(c.spool() / "100.ok.h1"); }, 5s));
    r = lonctl(c, {"spool", "retry", "h1"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("1 file(s) put back"), std::string::npos) << r.out;
    EXPECT_TRUE(wait_until(
        [&] {
            return slurp(c.perm_log()).find(":S:h1:echo:fixed-by-the-operator:") !=
                   std::string::npos;
        },
        5s));
    EXPECT_TRUE(std::filesystem::exists(c.spool() / "102.hopeless.h2.bad")); // h2's: untouched
    r = lonctl(c, {"spool", "purge-bad"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("1 bad file(s) deleted"), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(c.spool() / "102.hopeless.h2.bad"));
    EXPECT_TRUE(std::filesystem::exists(c.spool() / "lock"));
    r = lonctl(c, {"spool", "list", "nosuch"});
    EXPECT_EQ(r.code, 5);
}

// lonctl spool retry puts a set-aside file back with lonc's automatic
// retries counted from zero again (their count is kept on the file, in the
// attribute docs/operations.md names).
constexpr const char* retries_attr = "user.lonc.retries";

TEST(Lonctl, TheOperatorsRetryStartsTheAutomaticRetriesAgain) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto bad = c.spool_file("100.a.h1.bad", "echo:x\n");
    ASSERT_EQ(::setxattr(bad.c_str(), retries_attr, "3", 1, 0), 0) << std::strerror(errno);
    const auto r = lonctl(c, {"spool", "retry", "h1"});
    EXPECT_EQ(r.code, 0) << r.err;
    const auto back = c.spool() / "100.a.h1";
    ASSERT_TRUE(std::filesystem::exists(back));
    char buf[8];
    EXPECT_EQ(::getxattr(back.c_str(), retries_attr, buf, sizeof buf), -1);
    EXPECT_EQ(errno, ENODATA);
}

// A peer removed from hosts.tab has no child: its delayed files are named
// (loncron counts them), and a delivery record it left half done is
// finished by the supervisor, once.
TEST(Lonctl, ARemovedPeersDelayedFilesAreNamedAndItsRecordIsFinished) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.spool_file("100.a.h9", "echo:left-behind\n");
    c.spool_file("101.b.h9.bad", "echo:set-aside\n");
    c.spool_file("102.c.h9.sent", "echo:delivered\n"); // lond answered; no S line yet
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets());
    ASSERT_TRUE(
        wait_until([&] { return !std::filesystem::exists(c.spool() / "102.c.h9.sent"); }, 10s));
    const auto perm = slurp(c.perm_log());
    EXPECT_EQ(perm.find(":S:h9:echo:delivered:"), perm.rfind(":S:h9:echo:delivered:")) << perm;
    EXPECT_NE(perm.find(":S:h9:echo:delivered:"), std::string::npos) << perm;
    EXPECT_EQ(perm.find("left-behind"), std::string::npos) << perm;
    const std::string words =
        "peer no longer in hosts.tab: 1 delayed message and 1 set aside will not be delivered";
    auto r = lonctl(c, {"status"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(std::regex_search(r.out, std::regex("\nh9 +- +gone .* 1 +-  " + words))) << r.out;
    r = lonctl(c, {"check"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_TRUE(std::regex_search(r.out, std::regex("h9 +gone +" + words))) << r.out;
    r = lonctl(c, {"check", "--json"});
    const auto doc = json::parse(r.out);
    EXPECT_EQ(doc["departed"],
              json::parse(R"([{"id": "h9", "pending": 1, "bad": 1, "detail": ")" + words + "\"}]"))
        << r.out;
}

// The reason column tells a sick peer (links die before lond answers)
// from a down one (no link) and from one with a message set aside.
TEST(Lonctl, StatusTellsASickPeerFromADownOneAndFromAMessageSetAside) {
    Cluster c({.hosts = 4, .start_lonc = false});
    c.kill_sim(1);
    c.start_sim(1, {"--drop-requests"});
    c.spool_file("100.x.h3.bad", "echo:set-aside\n");
    c.start_lonc({"--retry-min", "0.2", "--retry-max", "1"});
    ASSERT_TRUE(c.wait_socket(3));
    c.kill_sim(2);
    ASSERT_TRUE(c.wait_no_socket(2));
    // h2's link may have died before it answered (sick for a moment): its
    // next attempt finds no lond, and then it is down.
    std::string out;
    std::smatch m;
    ASSERT_TRUE(wait_until(
        [&] {
            out = lonctl(c, {"status"}).out;
            return std::regex_search(out, std::regex("\nh1 [^\n]* sick [^\n]*  sick: links die "
                                                     "before lond answers a request \\([0-9]+ "
                                                     "failed attempts?\\); last: lond closed")) &&
                   std::regex_search(out, m, std::regex("\nh2 [^\n]*  ([^\n]+)\n")) &&
                   m[1].str().find("sick") == std::string::npos;
        },
        20s))
        << out;
    EXPECT_NE(m[1].str(), "-") << out;
    EXPECT_TRUE(std::regex_search(
        out, std::regex("\nh3 [^\n]* up [^\n]*  1 delayed message set aside as \\.bad")))
        << out;
    const auto doc = json::parse(lonctl(c, {"status", "--json"}).out);
    EXPECT_EQ(doc["peers"][1]["health"], "sick") << doc.dump();
}

TEST(Lonctl, AUserWhoMayNotUseTheSocketsIsToldPermissionDenied) {
    Cluster c({.hosts = 2});
    ASSERT_NE(::getpwnam("nobody"), nullptr);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"send", "h1", "ping"}, {"status"}, {"reconnect", "h1"}, {"reload"}}) {
        const auto r = lonctl(c, args, "nobody");
        EXPECT_EQ(r.code, 4) << args[0] << ": " << r.err;
        EXPECT_NE(r.err.find("Permission denied (run lonctl as root or as the user lonc runs as)"),
                  std::string::npos)
            << r.err;
        EXPECT_EQ(r.err.find("is lonc running"), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("not running"), std::string::npos) << r.err;
    }
    const auto r = lonctl(c, {"send", "h1", "ping", "--json"}, "nobody");
    EXPECT_EQ(r.code, 4);
    const auto doc = json::parse(r.out);
    EXPECT_EQ(doc["error"]["code"], 4) << r.out;
    EXPECT_EQ(doc["error"]["name"], "permission") << r.out;
    // The same user's failure to read a spool it may not enter.
    ::chmod(c.spool().c_str(), 0700);
    const auto spool = lonctl(c, {"spool", "list"}, "nobody");
    EXPECT_EQ(spool.code, 4) << spool.err;
    EXPECT_NE(spool.err.find(c.spool().string() + ": Permission denied"), std::string::npos)
        << spool.err;
}

TEST(Lonctl, AnUnreadableHostsTabIsNotNoSuchHost) {
    Cluster c({.hosts = 2, .start_lonc = false});
    ::chmod(c.hosts_tab().c_str(), 0600); // root's: nobody cannot read it
    auto r = lonctl(c, {"send", "h1", "ping"}, "nobody");
    EXPECT_EQ(r.code, 4) << r.err;
    EXPECT_NE(r.err.find("cannot read " + c.hosts_tab().string() + ": Permission denied"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("no such host"), std::string::npos) << r.err;
    std::filesystem::remove(c.hosts_tab());
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"send", "h1", "ping"}, {"reconnect", "h1"}, {"spool", "list", "h1"}}) {
        r = lonctl(c, args);
        EXPECT_EQ(r.code, 7) << args[0] << ": " << r.err;
        EXPECT_NE(
            r.err.find("cannot read " + c.hosts_tab().string() + ": No such file or directory"),
            std::string::npos)
            << r.err;
    }
    r = lonctl(c, {"check"});
    EXPECT_EQ(r.code, 3) << r.out; // not running comes first
    EXPECT_NE(r.out.find(c.hosts_tab().string() + ": cannot read"), std::string::npos) << r.out;
}

TEST(Lonctl, AMissingSpoolDirectoryIsSaidSoNotZeroPending) {
    Cluster c({.hosts = 2, .start_lonc = false});
    std::filesystem::remove_all(c.spool());
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"spool", "list"}, {"spool", "retry"}, {"spool", "purge-bad", "h1"}}) {
        const auto r = lonctl(c, args);
        EXPECT_EQ(r.code, 8) << args[1] << ": " << r.err;
        EXPECT_NE(
            r.err.find("no spool directory: " + c.spool().string() + ": No such file or directory"),
            std::string::npos)
            << r.err;
        EXPECT_EQ(r.out.find("pending"), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("0 "), std::string::npos) << r.out;
    }
}

TEST(Lonctl, VersionAndUsage) {
    Cluster c({.hosts = 1, .start_lonc = false});
    auto r = lonctl(c, {"--version"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "lonctl " LONC_VERSION "\n");
    r = lonctl(c, {"frobnicate"});
    EXPECT_EQ(r.code, 1);
    r = lonctl(c, {"send", "h0", "two\nlines"});
    EXPECT_EQ(r.code, 1) << r.err;
    // An unreadable access.conf: the configuration's code, with the cause.
    const auto bad = [&] {
        const auto missing = c.dir() / "no-such.conf";
        const auto cmd = std::string(LONCTL_PATH) + " -c '" + missing.string() + "' status >'" +
                         (c.dir() / "o").string() + "' 2>'" + (c.dir() / "e").string() + "'";
        const int st = std::system(cmd.c_str());
        return lonc::test::Run{WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(c.dir() / "o"),
                               slurp(c.dir() / "e")};
    }();
    EXPECT_EQ(bad.code, 7);
    EXPECT_NE(bad.err.find("no-such.conf: cannot read: No such file or directory"),
              std::string::npos)
        << bad.err;
}

// One peer's entry in a fresh `lonctl status --json` (null when lonctl failed).
json status_of(const Cluster& c, const std::string& id) {
    const auto doc = json::parse(lonctl(c, {"status", "--json"}).out, nullptr, false);
    if (doc.is_object() && doc.contains("peers")) {
        for (const auto& p : doc["peers"]) {
            if (p.value("id", "") == id) {
                return p;
            }
        }
    }
    return nullptr;
}

TEST(Lonctl, StatusSaysWhyALinkIsDown) {
    Cluster c({.hosts = 3});
    c.kill_sim(2);
    ASSERT_TRUE(c.wait_no_socket(2));
    // The table is a status generation of its own, and a down link moves on
    // (probing, unreachable, restarting ...) while a loaded child may miss a
    // status request: hold the table to the JSON of the generations just
    // before and after it, once those two agree and h1 answered up in both.
    const auto facts = [](const json& p) {
        return p.is_object() ? json::array({p.value("state", ""), p.value("answered", false),
                                            p.value("link", ""), p.value("last_error", "")})
                             : json();
    };
    const auto up = [](const json& p) {
        return p.is_object() && p.value("answered", false) && p.value("link", "") == "up";
    };
    json h2;
    lonc::test::Run r;
    ASSERT_TRUE(wait_until(
        [&] {
            const auto h1_before = status_of(c, "h1");
            const auto h2_before = status_of(c, "h2");
            r = lonctl(c, {"status"});
            h2 = status_of(c, "h2");
            return r.code == 0 && h2.is_object() && !up(h2) && facts(h2_before) == facts(h2) &&
                   up(h1_before) && up(status_of(c, "h1"));
        },
        20s))
        << h2.dump() << "\n"
        << r.out << r.err;
    EXPECT_NE(r.out.find("REASON"), std::string::npos) << r.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\nh2 [^\n]*  ([^\n]+)\n"))) << r.out;
    EXPECT_NE(m[1].str(), "-") << r.out;
    if (h2.value("answered", false)) {
        const auto error = h2.value("last_error", "");
        EXPECT_EQ(m[1].str(), error.empty() ? "no link yet" : error) << h2.dump() << r.out;
    } else {
        EXPECT_NE(m[1].str().find(h2["state"] == "unreachable" ? "probe" : " "), std::string::npos)
            << h2.dump() << r.out;
    }
    // An up link has no reason.
    EXPECT_TRUE(std::regex_search(r.out, std::regex("\nh1 [^\n]* up [^\n]*  -\n"))) << r.out;
}

TEST(Lonctl, EveryCommandThatPrintsDataHasJson) {
    Cluster c({.hosts = 2});
    auto r = lonctl(c, {"--json", "reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["result"], "applied") << r.out;
    c.spool_file("200.x.h1.bad", "echo:x\n");
    r = lonctl(c, {"spool", "list", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    auto doc = json::parse(r.out);
    EXPECT_EQ(doc["bad"], 1) << r.out;
    ASSERT_EQ(doc["files"].size(), 1U) << r.out;
    EXPECT_EQ(doc["files"][0]["file"], "200.x.h1.bad");
    EXPECT_EQ(doc["files"][0]["state"], "bad");
    EXPECT_EQ(doc["files"][0]["host"], "h1");
    r = lonctl(c, {"spool", "purge-bad", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), json({{"done", 1}, {"failed", json::array()}})) << r.out;
    r = lonctl(c, {"spool", "retry", "h1", "--json"});
    EXPECT_EQ(json::parse(r.out)["done"], 0) << r.out;
    r = lonctl(c, {"send", "nosuch", "ping", "--json"});
    EXPECT_EQ(r.code, 5);
    EXPECT_EQ(json::parse(r.out)["error"]["name"], "no_such_host") << r.out;
}

// ---------------------------------------------------------------- metrics

// The value of one sample line "name{labels} value", or -1.
double sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(series + " ", 0) == 0) {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return -1;
}

TEST(Metrics, FileIsWrittenPeriodicallyInPrometheusTextFormat) {
    const auto dir = TempDir("lonc-metrics");
    ::chmod(dir.path().c_str(), 0777);
    const auto file = dir / "lonc.prom";
    Cluster c(
        {.hosts = 2, .lonc_args = {"--metrics-file", file.string(), "--metrics-interval", "0.3"}});
    for (int i = 0; i < 5; ++i) {
        ASSERT_EQ(c.request(1, "ping"), "h1");
    }
    ASSERT_EQ(c.request(1, "close"), "con_lost");
    std::string text;
    ASSERT_TRUE(wait_until(
        [&] {
            text = slurp(file);
            return sample(text, R"(lonc_requests_total{peer="h1"})") == 5 &&
                   sample(text, R"(lonc_con_lost_total{peer="h1"})") == 1 &&
                   sample(text, R"(lonc_link_up{peer="h1"})") == 1;
        },
        10s))
        << text;
    EXPECT_EQ(sample(text, R"(lonc_build_info{version=")" LONC_VERSION R"("})"), 1) << text;
    EXPECT_EQ(sample(text, R"(lonc_con_lost_total{peer="h1"})"), 1);
    EXPECT_EQ(sample(text, R"(lonc_request_duration_seconds_count{peer="h1"})"), 6);
    EXPECT_EQ(sample(text, R"(lonc_request_duration_seconds_bucket{peer="h1",le="+Inf"})"), 6);
    EXPECT_GT(sample(text, R"(lonc_request_duration_seconds_sum{peer="h1"})"), 0);
    EXPECT_EQ(sample(text, R"(lonc_peers{state="running"})"), 2);
    EXPECT_EQ(sample(text, R"(lonc_spool_pending{peer="h0"})"), 0);
    EXPECT_GT(sample(text, R"(lonc_process_resident_memory_bytes{process="supervisor"})"), 0);
    EXPECT_GT(sample(text, R"(lonc_process_open_fds{peer="h1",process="child"})"), 0);
    EXPECT_GE(sample(text, R"(lonc_process_cpu_seconds_total{peer="h1",process="child"})"), 0);
    // Every line is a comment or "name{labels} value".
    std::istringstream in(text);
    std::string line;
    const std::regex sample_line(
        R"([a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eInfa]+)");
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        EXPECT_TRUE(std::regex_match(line, sample_line)) << line;
    }
    // A restarted child: its counters start again, the restart is counted.
    const auto restarts = R"(lonc_child_restarts_total{peer="h1"})";
    EXPECT_EQ(sample(text, restarts), 0);
    (void)c.request(1, "close_connection_exit");
    EXPECT_TRUE(wait_until([&] { return sample(slurp(file), restarts) == 1; }, 10s)) << slurp(file);
}

// Runs the naming checker (metrics_naming.py, with the Prometheus text-format
// parser of Debian's python3-prometheus-client) on file. Debian's own python3:
// the package's module is installed for it, not for another one on PATH.
Run check_naming(const Cluster& c, const std::filesystem::path& file,
                 const std::vector<std::string>& peers) {
    std::string cmd =
        "/usr/bin/python3 '" + std::string(LONC_METRICS_NAMING) + "' '" + file.string() + "'";
    for (const auto& p : peers) {
        cmd += " '" + p + "'";
    }
    const auto out = c.dir() / "naming.out";
    cmd += " >'" + out.string() + "' 2>&1";
    const int st = std::system(cmd.c_str());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out), {}};
}

TEST(Metrics, NamesTypesAndLabelsFollowPrometheusConventions) {
    const auto dir = TempDir("lonc-metrics");
    ::chmod(dir.path().c_str(), 0777);
    const auto file = dir / "lonc.prom";
    // lonnet's read-back window of an hour keeps a delayed message waiting:
    // its age is a metric.
    Cluster c({.hosts = 3,
               .lonc_args = {"--metrics-file", file.string(), "--metrics-interval", "0.3",
                             "--spool-min-age", "3600"}});
    ASSERT_EQ(c.request(1, "ping"), "h1");
    c.spool_file(std::to_string(std::time(nullptr) - 30) + ".ping." + c.id(2), "ping\n");
    std::string text;
    ASSERT_TRUE(wait_until(
        [&] {
            text = slurp(file);
            return sample(text, R"(lonc_requests_total{peer="h1"})") == 1 &&
                   sample(text, R"(lonc_spool_pending{peer="h2"})") == 1;
        },
        15s))
        << text;
    EXPECT_GE(sample(text, R"(lonc_spool_oldest_age_seconds{peer="h2"})"), 30) << text;
    EXPECT_GE(sample(text, "lonc_status_generations_total"), 1) << text;
    const auto r = check_naming(c, file, {c.id(0), c.id(1), c.id(2)});
    EXPECT_EQ(r.code, 0) << r.out << text;
    EXPECT_NE(r.out.find("ok: "), std::string::npos) << r.out;

    // The checker finds what the names used to be.
    c.dir().write("old.prom", "# HELP lonc_status_generation Status generations\n"
                              "# TYPE lonc_status_generation counter\n"
                              "lonc_status_generation 7\n"
                              "# HELP lonc_process_open_fds Open descriptors\n"
                              "# TYPE lonc_process_open_fds gauge\n"
                              "lonc_process_open_fds{process=\"h1\"} 9\n");
    const auto old = check_naming(c, c.dir() / "old.prom", {c.id(0), c.id(1)});
    EXPECT_EQ(old.code, 1) << old.out;
    EXPECT_NE(old.out.find("lonc_status_generation: a counter, so it must end in _total"),
              std::string::npos)
        << old.out;
    EXPECT_NE(old.out.find("process is 'h1', not supervisor or child"), std::string::npos)
        << old.out;
}

} // namespace
} // namespace lonc::test
