// Reload (HUP, USR2, lonctl reload) against the real daemon, under load:
// lonnet-pattern clients with unique tokens to several peers, every reply
// checked. "No new TCP connection" is counted at each lond-sim: its --log
// has one `init` line per connection lonc made.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <signal.h>
#include <thread>

#include "cluster.hpp"
#include "mixed_load.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A fresh status generation, as lonctl status --json gives it.
json fresh_status(const Cluster& c) {
    const auto r = lonctl(c, {"status", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
}

std::map<std::string, int> child_pids(const json& status) {
    std::map<std::string, int> out;
    for (const auto& p : status["peers"]) {
        if (!p["pid"].is_null()) {
            out[p["id"].get<std::string>()] = p["pid"].get<int>();
        }
    }
    return out;
}

// TCP connections lonc made to a lond-sim log: one `init` each.
std::size_t inits(const std::filesystem::path& sim_log) {
    std::size_t n = 0;
    std::ifstream in(sim_log);
    for (std::string line; std::getline(in, line);) {
        const auto tab = line.find('\t');
        n += tab != std::string::npos && line.compare(tab + 1, 5, "init\t") == 0 ? 1U : 0U;
    }
    return n;
}

// Links the child of host h opened on demand (each one `init`), from a
// fresh status: the inits a reload did not cause.
std::size_t opened_on_demand(const Cluster& c, int h) {
    const auto status = fresh_status(c);
    for (const auto& p : status["peers"]) {
        if (p["id"] == c.id(h)) {
            return p.value("links_opened", std::size_t{0});
        }
    }
    return 0;
}

std::size_t count(const std::string& text, const std::string& regex) {
    const std::regex re(regex);
    return static_cast<std::size_t>(
        std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

bool wait_count(const Cluster& c, const std::string& regex, std::size_t n,
                std::chrono::milliseconds timeout = 15s) {
    return wait_until([&] { return count(c.log(), regex) >= n; }, timeout);
}

std::string hosts_line(const Cluster& c, const std::string& id, const std::string& ip) {
    (void)c;
    return id + ":testdom:library:" + id + ".example.invalid:" + ip + "\n";
}

// Load in the background for as long as it lives: lonnet's pattern (a
// connection per request), unique tokens, every reply checked by run_load.
class Background {
public:
    Background(const Cluster& c, std::vector<int> hosts) {
        opts_.hosts = std::move(hosts);
        opts_.max_concurrency = 6;
        opts_.max_payload = 512;
        opts_.lonnet_share = 1.0;
        opts_.duration = 600s; // or until stop()
        opts_.stop = &stop_;
        thread_ = std::thread([this, &c] { run_load(c, opts_, result_); });
    }
    ~Background() { stop(); }
    Background(const Background&) = delete;
    Background& operator=(const Background&) = delete;

    // Waits until at least n more requests were answered.
    void wait_more(std::uint64_t n) {
        const auto start = result_.ok.load();
        EXPECT_TRUE(wait_until([&] { return result_.ok.load() >= start + n; }, 20s))
            << result_.summary();
    }
    const LoadResult& stop() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        return result_;
    }

private:
    LoadOptions opts_;
    LoadResult result_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

TEST(Reload, HupTwiceWithNothingChangedTouchesNoLinkUnderLoad) {
    Cluster c({.hosts = 3});
    const pid_t parent = c.lonc_pid();
    const auto pids = child_pids(fresh_status(c));
    ASSERT_EQ(pids.size(), 3U);
    std::vector<std::size_t> before;
    for (int h = 0; h < 3; ++h) {
        before.push_back(inits(c.sim_log(h)));
        EXPECT_EQ(before.back(), 1U) << c.id(h);
    }
    {
        Background load(c, {0, 1, 2});
        load.wait_more(50);
        for (std::size_t i = 1; i <= 2; ++i) {
            ::kill(parent, SIGHUP);
            ASSERT_TRUE(wait_count(c, "INFO: HUP: configuration reloaded: nothing changed", i))
                << c.log();
            load.wait_more(50);
        }
        // USR2 is the same (a tool that sends it for a host-table update).
        ::kill(parent, SIGUSR2);
        ASSERT_TRUE(wait_count(c, "INFO: USR2: configuration reloaded: nothing changed", 1));
        load.wait_more(50);
        expect_no_failed_request(load.stop());
    }
    // The load opens links on demand (one init each, counted by the
    // child); any other init would be a link the reloads touched.
    const auto status = fresh_status(c);
    for (int h = 0; h < 3; ++h) {
        std::size_t opened = 0;
        for (const auto& p : status["peers"]) {
            if (p["id"] == c.id(h)) {
                opened = p.value("links_opened", std::size_t{0});
                EXPECT_EQ(p.value("reconnects", 1), 0) << c.id(h);
            }
        }
        EXPECT_EQ(inits(c.sim_log(h)), before[static_cast<std::size_t>(h)] + opened) << c.id(h);
    }
    EXPECT_EQ(c.lonc_pid(), parent);
    EXPECT_EQ(child_pids(status), pids);
    EXPECT_EQ(c.log().find("CRITICAL"), std::string::npos) << c.log();
}

TEST(Reload, PeerAddedAndRemovedOthersUntouched) {
    Cluster c({.hosts = 4, .start_lonc = false}); // a lond-sim for h0..h3
    const auto tab = [&](std::vector<int> hosts) {
        std::string t;
        for (const int h : hosts) {
            t += hosts_line(c, c.id(h), c.ip(h));
        }
        c.dir().write("hosts.tab", t);
    };
    tab({0, 1, 2});
    c.start_lonc({"--metrics-file", (c.dir() / "logs/metrics.prom").string()});
    ASSERT_TRUE(c.wait_socket(0) && c.wait_socket(1) && c.wait_socket(2));
    // Two delayed messages for h2 that cannot be delivered before it goes:
    // the first one holds its link (lond-sim answers after a minute).
    const auto now = std::to_string(std::time(nullptr));
    c.spool_file(now + ".sleep60000a.h2", "sleep:60000:a\n");
    c.spool_file(now + ".sleep60000b.h2", "sleep:60000:b\n");
    ASSERT_TRUE(wait_until(
        [&] {
            for (const auto& r : c.sim_requests(2)) {
                if (r.size() > 1 && r[1].rfind("sleep:60000", 0) == 0) {
                    return true;
                }
            }
            return false;
        },
        10s));
    const auto pids = child_pids(fresh_status(c));
    const auto inits0 = inits(c.sim_log(0));
    const auto inits1 = inits(c.sim_log(1));
    const auto log_before = c.log().size();
    {
        Background load(c, {0, 1});
        load.wait_more(50);
        tab({0, 1, 3});
        ::kill(c.lonc_pid(), SIGHUP);
        ASSERT_TRUE(wait_count(c,
                               R"(INFO: HUP: configuration reloaded: peers added 1 \(h3\), )"
                               R"(removed 1 \(h2\), changed 0, unchanged 2)",
                               1))
            << c.log();
        EXPECT_TRUE(c.wait_socket(3, 10s));
        EXPECT_EQ(c.request(3, "ping"), c.id(3));
        EXPECT_TRUE(c.wait_no_socket(2, 10s));
        EXPECT_TRUE(c.wait_log("INFO: Child [0-9]+ for removed server h2 has finished", 15s));
        load.wait_more(50);
        expect_no_failed_request(load.stop());
    }
    const auto log = c.log();
    EXPECT_TRUE(
        std::regex_search(log, std::regex("WARNING: h2 was removed from hosts.tab; 2 "
                                          "delayed messages for it can no longer be "
                                          "delivered: " +
                                          now + ".sleep60000a.h2 " + now + ".sleep60000b.h2")))
        << log;
    EXPECT_EQ(log.find("CRITICAL", log_before), std::string::npos) << log.substr(log_before);
    // The others kept their child and their TCP connection.
    const auto after = fresh_status(c);
    const auto now_pids = child_pids(after);
    EXPECT_EQ(now_pids.at("h0"), pids.at("h0"));
    EXPECT_EQ(now_pids.at("h1"), pids.at("h1"));
    EXPECT_EQ(now_pids.count("h2"), 0U);
    EXPECT_EQ(inits(c.sim_log(0)), inits0 + opened_on_demand(c, 0));
    EXPECT_EQ(inits(c.sim_log(1)), inits1 + opened_on_demand(c, 1));
    // The undeliverable files, in both status files and the metrics.
    const auto names = after["reload"]["undeliverable"]["h2"];
    ASSERT_EQ(names.size(), 2U) << after.dump();
    EXPECT_EQ(names[0], now + ".sleep60000a.h2");
    EXPECT_TRUE(after["reload"]["success"].get<bool>());
    EXPECT_NE(slurp(c.status_txt()).find("-\th2\t"), std::string::npos) << slurp(c.status_txt());
    EXPECT_NE(
        slurp(c.status_txt())
            .find("2 delayed messages can no longer be delivered\t" + now + ".sleep60000a.h2"),
        std::string::npos);
    EXPECT_TRUE(wait_until(
        [&] {
            return slurp(c.dir() / "logs/metrics.prom")
                       .find("lonc_spool_undeliverable{peer=\"h2\"} 2") != std::string::npos;
        },
        20s))
        << slurp(c.dir() / "logs/metrics.prom");
    EXPECT_TRUE(std::filesystem::exists(c.spool() / (now + ".sleep60000a.h2"))); // never lost
}

// The warning about a removed peer's delayed messages is one short line
// whatever delayed/ holds: ten names at most, each printable.
TEST(Reload, RemovedPeersMessagesAreListedTenAtMostAndPrintable) {
    Cluster c({.hosts = 3, .start_lonc = false});
    const auto tab = [&](std::vector<int> hosts) {
        std::string t;
        for (const int h : hosts) {
            t += hosts_line(c, c.id(h), c.ip(h));
        }
        c.dir().write("hosts.tab", t);
    };
    tab({0, 1, 2});
    c.kill_sim(2); // its messages stay in delayed/
    c.spool_file("100.ctl\x1bname.h2", "echo:x\n");
    for (int i = 0; i < 12; ++i) {
        c.spool_file("2" + std::to_string(10 + i) + ".m.h2", "echo:y\n");
    }
    c.start_lonc();
    ASSERT_TRUE(c.wait_socket(0) && c.wait_socket(1));
    tab({0, 1});
    ::kill(c.lonc_pid(), SIGHUP);
    ASSERT_TRUE(c.wait_log("h2 was removed from hosts.tab; 13 delayed messages", 10s)) << c.log();
    const auto log = c.log();
    EXPECT_EQ(log.find('\x1b'), std::string::npos) << "a raw control character in lonc.log";
    const auto at = log.find("h2 was removed from hosts.tab");
    const auto line = log.substr(at, log.find('\n', at) - at);
    EXPECT_NE(line.find(R"(100.ctl\x1bname.h2)"), std::string::npos) << line;
    EXPECT_NE(line.find(" and 3 more"), std::string::npos) << line;
    EXPECT_LT(line.size(), 400U) << line;
}

TEST(Reload, AddressChangeReconnectsOnlyThatPeer) {
    Cluster c({.hosts = 4, .start_lonc = false});
    // h2's new home: a lond-sim answering as h2 on h3's address.
    c.kill_sim(3);
    const auto new_log = c.dir() / "sim-h2-new.log";
    SpawnOptions so;
    so.capture_stdout = true;
    auto moved = Process::spawn({lond_sim_binary(), "--hosts", c.hosts_tab().string(), "--port",
                                 std::to_string(c.port()), "--bind", c.ip(3), "--id", "h2", "--log",
                                 new_log.string()},
                                so);
    ASSERT_TRUE(moved.wait_for_output("ready", 10s));
    c.write_hosts(3);
    c.start_lonc();
    ASSERT_TRUE(c.wait_socket(0) && c.wait_socket(1) && c.wait_socket(2));
    const auto pids = child_pids(fresh_status(c));
    const auto inits0 = inits(c.sim_log(0));
    const auto inits1 = inits(c.sim_log(1));
    const auto log_before = c.log().size();
    {
        Background load(c, {0, 1});
        load.wait_more(50);
        c.dir().write("hosts.tab", hosts_line(c, "h0", c.ip(0)) + hosts_line(c, "h1", c.ip(1)) +
                                       hosts_line(c, "h2", c.ip(3)));
        ASSERT_EQ(lonctl(c, {"reload"}).code, 0) << slurp(c.dir() / "lonctl.err");
        EXPECT_NE(slurp(c.dir() / "lonctl.out")
                      .find("applied: peers added 0, removed 0, changed 1 (h2 (" + c.ip(2) +
                            " -> " + c.ip(3) + ")), unchanged 2"),
                  std::string::npos)
            << slurp(c.dir() / "lonctl.out");
        EXPECT_TRUE(wait_until([&] { return inits(new_log) == 1; }, 15s)) << c.log();
        EXPECT_TRUE(wait_until([&] { return c.request(2, "ping") == "h2"; }, 10s));
        load.wait_more(50);
        expect_no_failed_request(load.stop());
    }
    const auto now_pids = child_pids(fresh_status(c));
    EXPECT_EQ(now_pids.at("h0"), pids.at("h0"));
    EXPECT_EQ(now_pids.at("h1"), pids.at("h1"));
    EXPECT_NE(now_pids.at("h2"), pids.at("h2"));
    EXPECT_EQ(inits(c.sim_log(0)), inits0 + opened_on_demand(c, 0));
    EXPECT_EQ(inits(c.sim_log(1)), inits1 + opened_on_demand(c, 1));
    EXPECT_EQ(inits(c.sim_log(2)), 1U); // the old address is not tried again
    const auto log = c.log();
    EXPECT_EQ(log.find("CRITICAL", log_before), std::string::npos) << log.substr(log_before);
    moved.signal(SIGTERM);
    moved.wait(5s);
}

TEST(Reload, BrokenSettingsThenBrokenHostsLineChangeNothing) {
    Cluster c({.hosts = 3, .start_lonc = false});
    const auto ini = c.dir() / "lonc.ini";
    c.dir().write("lonc.ini", "# settings\nrequest-timeout = 300\n");
    c.start_lonc({"--settings", ini.string(), "--metrics-file",
                  (c.dir() / "logs/metrics.prom").string(), "--metrics-interval", "0.2"});
    ASSERT_TRUE(c.wait_all_sockets());
    const pid_t parent = c.lonc_pid();
    const auto pids = child_pids(fresh_status(c));
    std::vector<std::size_t> before;
    for (int h = 0; h < 3; ++h) {
        before.push_back(inits(c.sim_log(h)));
    }
    const auto metrics = [&] { return slurp(c.dir() / "logs/metrics.prom"); };
    ASSERT_TRUE(wait_until(
        [&] { return metrics().find("lonc_config_last_reload_successful 1") != std::string::npos; },
        10s));
    {
        Background load(c, {0, 1, 2});
        load.wait_more(50);

        // A misspelt key in the settings file.
        c.dir().write("lonc.ini", "# settings\nrequest-timeout = 300\nrequest-timout = 5\n");
        auto r = lonctl(c, {"reload"});
        EXPECT_EQ(r.code, 2) << r.out << r.err;
        const auto where = ini.string() + ":3: unknown setting 'request-timout'";
        EXPECT_NE(r.err.find(where), std::string::npos) << r.err;
        EXPECT_TRUE(c.log_contains("ERROR: lonctl reload: configuration not reloaded: " + where))
            << c.log();
        ::kill(parent, SIGHUP);
        EXPECT_TRUE(c.wait_log("ERROR: HUP: configuration not reloaded: " + where));
        auto st = fresh_status(c);
        EXPECT_FALSE(st["reload"]["success"].get<bool>());
        EXPECT_NE(st["reload"]["result"].get<std::string>().find(where), std::string::npos);
        EXPECT_TRUE(wait_until(
            [&] {
                const auto m = metrics();
                return m.find("lonc_config_last_reload_successful 0") != std::string::npos &&
                       m.find(where) != std::string::npos;
            },
            10s))
            << metrics();
        // A bad value, then a broken hosts.tab line.
        c.dir().write("lonc.ini", "request-timeout = -5\n");
        r = lonctl(c, {"reload"});
        EXPECT_EQ(r.code, 2);
        EXPECT_NE(r.err.find(ini.string() + ":1: --request-timeout"), std::string::npos) << r.err;
        c.dir().write("lonc.ini", "request-timeout = 300\n");
        c.write_hosts(3, "h9:testdom:library:h9.example.invalid\n");
        r = lonctl(c, {"reload"});
        EXPECT_EQ(r.code, 2);
        EXPECT_NE(r.err.find(c.hosts_tab().string() +
                             ":5: expected id:domain:role:hostname:ip, found 4 fields"),
                  std::string::npos)
            << r.err;
        EXPECT_TRUE(c.wait_log("ERROR: lonctl reload: configuration not reloaded: " +
                               c.hosts_tab().string() + ":5: "));
        load.wait_more(50);
        expect_no_failed_request(load.stop());
    }
    // Nothing changed meanwhile: same process, children and connections.
    EXPECT_EQ(c.lonc_pid(), parent);
    EXPECT_TRUE(c.lonc().running());
    EXPECT_EQ(child_pids(fresh_status(c)), pids);
    for (int h = 0; h < 3; ++h) {
        EXPECT_EQ(inits(c.sim_log(h)), before[static_cast<std::size_t>(h)] + opened_on_demand(c, h))
            << c.id(h);
    }
    EXPECT_EQ(c.log().find("CRITICAL"), std::string::npos) << c.log();
    // Fixed: applied, and the metrics say so.
    c.write_hosts(3);
    const auto r = lonctl(c, {"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "applied: nothing changed (3 peers unchanged)\n");
    EXPECT_TRUE(wait_until(
        [&] { return metrics().find("lonc_config_last_reload_successful 1") != std::string::npos; },
        10s))
        << metrics();
}

// The operator learns through lonctl why a broken access.conf is not
// taken: lonctl reaches the running lonc though it cannot use the file.
TEST(Reload, ABrokenAccessConfIsExplainedByLonctlReload) {
    Cluster c({.hosts = 2});
    const pid_t parent = c.lonc_pid();
    const auto good = slurp(c.conf());
    c.dir().write("access.conf",
                  std::regex_replace(good, std::regex("PerlSetVar lonDaemons [^\n]*\n"), ""));
    const auto r = lonctl(c, {"reload"});
    EXPECT_EQ(r.code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("reload rejected"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("required key lonDaemons is missing"), std::string::npos) << r.err;
    EXPECT_EQ(c.lonc_pid(), parent);
    EXPECT_EQ(c.request(1, "echo:still"), "still");
    c.dir().write("access.conf", good);
    EXPECT_EQ(lonctl(c, {"reload"}).code, 0);
}

TEST(Reload, NewTimeoutReachesRunningChildWithoutNewLink) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.dir().write("lonc.ini", "request-timeout = 300\n");
    c.start_lonc({"--settings", (c.dir() / "lonc.ini").string()});
    ASSERT_TRUE(c.wait_all_sockets());
    const auto pids = child_pids(fresh_status(c));
    c.dir().write("lonc.ini", "request-timeout = 1\n");
    const auto r = lonctl(c, {"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("options: request-timeout 300 -> 1"), std::string::npos) << r.out;
    EXPECT_EQ(inits(c.sim_log(1)), 1U);
    EXPECT_EQ(child_pids(fresh_status(c)), pids);
    // The running child answers con_lost after 1 s now, not 300.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(c.request(1, "sleep:20000:late", 15s), "con_lost");
    EXPECT_LT(since(t0), 15.0);
}

// A lower --max-connections reaches a running child without dropping a
// link: the one opened on demand finishes its request, then closes.
TEST(Reload, ALowerMaxConnectionsDropsNoLinkAndClosesTheExtraOnceIdle) {
    Cluster c({.hosts = 2, .start_lonc = false});
    c.dir().write("lonc.ini", "max-connections = 8\n");
    c.start_lonc({"--settings", (c.dir() / "lonc.ini").string()});
    ASSERT_TRUE(c.wait_all_sockets());
    const auto on_the_wire = [&](const std::string& line) {
        return wait_until(
            [&] {
                for (const auto& row : c.sim_requests(1)) {
                    if (row.size() >= 2 && row[1] == line) {
                        return true;
                    }
                }
                return false;
            },
            10s);
    };
    ASSERT_TRUE(on_the_wire("pong")); // the kept link is free again after it
    auto one = c.client(1);
    auto two = c.client(1);
    ASSERT_TRUE(one && two);
    ASSERT_TRUE(one->send_line("sleep:3000:one"));
    ASSERT_TRUE(on_the_wire("sleep:3000:one"));
    ASSERT_TRUE(two->send_line("sleep:3000:two")); // on a link opened for it
    ASSERT_TRUE(on_the_wire("sleep:3000:two"));
    c.dir().write("lonc.ini", "max-connections = 1\n");
    const auto r = lonctl(c, {"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("options: max-connections 8 -> 1"), std::string::npos) << r.out;
    EXPECT_EQ(one->read_line(10s), "one");
    EXPECT_EQ(two->read_line(10s), "two") << "the extra link was dropped under its request";
    json peer = json::object();
    EXPECT_TRUE(wait_until(
        [&] {
            const auto status = fresh_status(c);
            for (const auto& p : status["peers"]) {
                if (p["id"] == c.id(1)) {
                    peer = p;
                }
            }
            return peer.value("links_total", 0) == 1 && peer.value("links_closed", 0) == 1;
        },
        10s))
        << peer.dump();
    EXPECT_EQ(peer.value("links_max", 0), 1);
    EXPECT_EQ(peer.value("reconnects", 1), 0);
    EXPECT_EQ(inits(c.sim_log(1)), 2U); // the kept link and the one opened on demand
    EXPECT_EQ(c.request(1, "echo:after"), "after");
}

TEST(Reload, LonSockDirChangeIsRejectedAsNeedingARestart) {
    Cluster c({.hosts = 2});
    const pid_t parent = c.lonc_pid();
    const auto pids = child_pids(fresh_status(c));
    const auto original = slurp(c.conf());
    c.dir().make_dir("sockets2", "www");
    c.dir().write("access.conf",
                  std::regex_replace(original, std::regex("/sockets\n"), "/sockets2\n"));
    ::kill(parent, SIGHUP);
    EXPECT_TRUE(c.wait_log("ERROR: HUP: configuration not reloaded: " + c.conf().string() +
                           ": lonSockDir changed from '" + (c.dir() / "sockets").string() +
                           "' to '" + (c.dir() / "sockets2").string() +
                           "': that needs a restart of lonc"))
        << c.log();
    const auto r = lonctl(c, {"reload"});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("needs a restart"), std::string::npos) << r.err;
    EXPECT_EQ(c.request(1, "ping"), c.id(1));
    EXPECT_FALSE(std::filesystem::exists(c.dir() / "sockets2" / "h1"));
    c.dir().write("access.conf", original);
    EXPECT_EQ(child_pids(fresh_status(c)), pids);
    EXPECT_EQ(c.lonc_pid(), parent);
    // Not running: its own exit code.
    ASSERT_TRUE(c.stop_lonc().has_value());
    EXPECT_EQ(lonctl(c, {"reload"}).code, 3);
}

TEST(Reload, SignalsBeforeTheFirstProbesDoNotFailTheStart) {
    Cluster c({.hosts = 3, .start_lonc = false});
    DropRule drop(c.ip(2)); // its probe takes the whole --probe-timeout (2 s)
    c.start_lonc({}, false);
    ASSERT_TRUE(wait_until([&] { return c.lonc_pid() > 0 && ::kill(c.lonc_pid(), 0) == 0; }, 10s));
    ::kill(c.lonc_pid(), SIGHUP);
    ::kill(c.lonc_pid(), SIGUSR1);
    ::kill(c.lonc_pid(), SIGUSR2);
    const auto st = c.lonc().wait(20s); // the launching command
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->exited(0)) << st->to_string() << slurp(c.dir() / "lonc.stderr");
    EXPECT_TRUE(c.wait_log("INFO: HUP: configuration reloaded: nothing changed")) << c.log();
    EXPECT_TRUE(c.wait_socket(0) && c.wait_socket(1));
    EXPECT_EQ(c.request(1, "ping"), c.id(1));
}

TEST(Reload, FreshChildrenSurviveEarlySignals) {
    // A child gets USR1 and HUP the moment it exists: blocked across the
    // fork, they wait for its signal reader instead of killing it.
    Cluster c({.hosts = 3, .lonc_args = {"--max-attempts", "100"}});
    const auto log_before = c.log().size();
    for (int round = 0; round < 3; ++round) {
        for (const auto pid : c.children()) {
            ::kill(pid, SIGKILL);
        }
        const auto t0 = std::chrono::steady_clock::now();
        while (since(t0) < 1.0) {
            for (const auto pid : c.children()) {
                ::kill(pid, SIGUSR1);
                ::kill(pid, SIGHUP);
                ::kill(pid, SIGUSR2);
            }
            std::this_thread::sleep_for(1ms);
        }
        ASSERT_TRUE(c.wait_all_sockets(20s)) << c.log();
    }
    const auto log = c.log().substr(log_before);
    EXPECT_EQ(log.find("died: signal 1 "), std::string::npos) << log;
    EXPECT_EQ(log.find("died: signal 10 "), std::string::npos) << log;
    EXPECT_EQ(log.find("died: signal 12 "), std::string::npos) << log;
}

} // namespace
} // namespace lonc::test
