// lonctl upgrade against the real daemon, under load: lonnet-pattern
// clients with unique tokens to every peer, every reply checked. The binary
// lonc runs from is a copy in a scratch directory, so the test can put a
// new file (another copy, or a broken one) at the same path, as a package
// upgrade does.
#include <gtest/gtest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <regex>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "cluster.hpp"
#include "mixed_load.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;

// lonc's binary at a path of its own that www can reach (the supervisor,
// running as www, executes it again).
class Binary {
public:
    Binary() : dir_("lonc-upgrade-bin") {
        std::filesystem::permissions(dir_.path(), std::filesystem::perms(0755));
        install_copy();
    }
    [[nodiscard]] std::string path() const { return (dir_ / "lonc").string(); }
    [[nodiscard]] std::filesystem::path dir() const { return dir_.path(); }
    // A new file at the path (a new inode), as dpkg puts it: written
    // beside it, then renamed over it.
    void install_copy() const { install(slurp_binary(lonc_binary())); }
    void install(const std::string& content) const {
        const auto tmp = dir_ / "lonc.new";
        {
            std::ofstream out(tmp, std::ios::binary);
            out << content;
        }
        std::filesystem::permissions(tmp, std::filesystem::perms(0755));
        std::filesystem::rename(tmp, path());
    }
    [[nodiscard]] ino_t inode() const {
        struct stat st {};
        return ::stat(path().c_str(), &st) == 0 ? st.st_ino : 0;
    }

private:
    static std::string slurp_binary(const std::string& p) {
        std::ifstream in(p, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }
    TempDir dir_;
};

// The inode a process runs (/proc/PID/exe), 0 if gone.
ino_t exe_inode(pid_t pid) {
    struct stat st {};
    const auto p = "/proc/" + std::to_string(pid) + "/exe";
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

ClusterOptions upgrade_cluster(const Binary& bin, int hosts = 4) {
    ClusterOptions o;
    o.hosts = hosts;
    o.lonc_binary = bin.path();
    return o;
}

LoadOptions lonnet_load(std::atomic<bool>& stop) {
    LoadOptions o;
    o.hosts = {0, 1, 2, 3};
    o.max_concurrency = 32;
    o.vary_concurrency = false; // 32 clients all the time: figures to compare
    o.max_payload = 4096;
    o.lonnet_share = 1.0; // lonnet's pattern only: a connection per request
    o.eget_share = 0;
    o.encrypted_share = 0.1;
    o.duration = 120s;
    o.stop = &stop;
    return o;
}

std::set<pid_t> child_set(const Cluster& c) {
    const auto v = c.children();
    return {v.begin(), v.end()};
}

// Every child now running is new and runs the new binary.
void expect_every_child_replaced(const Cluster& c, const std::set<pid_t>& old_children,
                                 const Binary& bin) {
    for (const pid_t p : child_set(c)) {
        EXPECT_EQ(old_children.count(p), 0U) << "child " << p << " was not replaced";
        EXPECT_EQ(exe_inode(p), bin.inode()) << "child " << p << " runs the new file";
    }
}

// No old child was cut short: none killed, none answered con_lost for what
// it held.
void expect_nothing_cut_short(const Cluster& c) {
    EXPECT_FALSE(c.log_contains("killing it")) << c.log();
    EXPECT_FALSE(c.log_contains("answering \\d+ queued and in-flight requests con_lost"))
        << c.log();
}

// How many times lond-sim for host got line (in clear).
std::size_t lond_saw(const Cluster& c, int host, const std::string& line) {
    std::size_t n = 0;
    for (const auto& r : c.sim_requests(host)) {
        n += r.size() > 2 && r[2] == line ? 1U : 0U;
    }
    return n;
}

// One request of ms milliseconds to host (lond-sim's sleep), sent from a
// thread of its own at once; joined when it goes out of scope.
struct SlowRequest {
    SlowRequest(Cluster& c, int host, int ms, const std::string& name)
        : token(unique_token(name)), line("sleep:" + std::to_string(ms) + ":" + token),
          thread([this, &c, host] { reply = c.request(host, line, 60s); }) {}
    SlowRequest(const SlowRequest&) = delete;
    SlowRequest& operator=(const SlowRequest&) = delete;
    ~SlowRequest() { join(); }
    void join() {
        if (thread.joinable()) {
            thread.join();
        }
    }
    const std::string token;
    const std::string line;
    std::optional<std::string> reply;
    std::thread thread; // last: it starts once the rest is there
};

// Waits until lond-sim on host holds every one of them.
bool at_lond(const Cluster& c, int host, std::initializer_list<const SlowRequest*> reqs) {
    return wait_until(
        [&] {
            return std::all_of(reqs.begin(), reqs.end(), [&](const SlowRequest* r) {
                return lond_saw(c, host, r->line) > 0;
            });
        },
        15s);
}

// Requests of several seconds beside the quick load: one client per peer
// sends sleep:3000 requests one after another, a connection each (lonnet's
// pattern), the clients out of step, and checks every reply is its own.
class SlowLoad {
public:
    SlowLoad(Cluster& c, int hosts) {
        for (int h = 0; h < hosts; ++h) {
            threads_.emplace_back([this, &c, h, hosts] {
                // Out of step (a quarter of the cycle apart with 4 hosts):
                // whenever the upgrade begins, one of them still has most
                // of its 3 s to go.
                std::this_thread::sleep_for(3000ms * h / hosts);
                while (!stop_) {
                    const auto token = unique_token("slow" + std::to_string(h));
                    const auto line = "sleep:3000:" + token;
                    const auto reply = c.request(h, line, 60s);
                    const std::lock_guard lock(mutex_);
                    (reply == token ? answered_ : failed_).push_back({h, line});
                }
            });
        }
    }
    SlowLoad(const SlowLoad&) = delete;
    SlowLoad& operator=(const SlowLoad&) = delete;
    ~SlowLoad() { stop(); }
    // Waits for the requests out to be answered.
    void stop() {
        stop_ = true;
        for (auto& t : threads_) {
            if (t.joinable()) {
                t.join();
            }
        }
    }
    // (host, request line) of each request answered with its own reply, and
    // of each that was not.
    std::vector<std::pair<int, std::string>> answered_;
    std::vector<std::pair<int, std::string>> failed_;

private:
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<std::thread> threads_;
};

TEST(Upgrade, ANewBinaryTakesOverEveryPeerWithoutAFailedRequest) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin));
    const pid_t sup = c.lonc_pid();
    ASSERT_GT(sup, 0);
    const auto old_children = child_set(c);
    ASSERT_EQ(old_children.size(), 4U);
    const ino_t old_inode = bin.inode();

    // The same load without an upgrade first: the figures to compare with.
    // Both windows have 3 s requests in the mix: the old children keep
    // theirs to the end (lonctl upgrade waits for them).
    std::atomic<bool> stop{false};
    LoadResult base;
    SlowLoad slow(c, 4);
    {
        auto o = lonnet_load(stop);
        o.duration = 3s;
        run_load(c, o, base);
    }
    expect_no_failed_request(base);

    // The new file first (under ASan a copy takes seconds): the window is
    // the upgrade's.
    bin.install_copy();
    ASSERT_NE(bin.inode(), old_inode);
    LoadResult r;
    std::thread load([&] { run_load(c, lonnet_load(stop), r); });
    std::this_thread::sleep_for(200ms);
    // The load window is the upgrade, give or take 0.2 and 0.1 s.
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = lonctl(c, {"upgrade"});
    const double took = since(t0);
    std::this_thread::sleep_for(100ms);
    stop = true;
    load.join();
    slow.stop();
    EXPECT_TRUE(slow.failed_.empty()) << slow.failed_.size() << " slow requests failed, the first "
                                      << slow.failed_.front().second << "\n"
                                      << c.log();
    EXPECT_GE(slow.answered_.size(), 4U); // at least one for each peer
    // lond-sim's logs hold every quick request too: each read once.
    std::map<int, std::map<std::string, std::size_t>> seen; // host -> line -> times
    for (int h = 0; h < 4; ++h) {
        for (const auto& row : c.sim_requests(h)) {
            if (row.size() > 2 && row[2].rfind("sleep:", 0) == 0) {
                ++seen[h][row[2]];
            }
        }
    }
    for (const auto& [host, line] : slow.answered_) {
        EXPECT_EQ(seen[host][line], 1U) << line << ": lond ran it more than once";
    }
    EXPECT_GT(took, 1.0) << "the old children held 3 s requests: the upgrade waits for them";

    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    EXPECT_NE(run.out.find("upgraded: lonc " LONC_VERSION " -> " LONC_VERSION
                           ": 4 of 4 peers handed over"),
              std::string::npos)
        << run.out;
    expect_no_failed_request(r);
    EXPECT_GT(r.ok.load(), 100U) << "too little load to judge by: " << r.summary();
    EXPECT_EQ(c.lonc_pid(), sup) << "the supervisor keeps its pid";
    EXPECT_EQ(exe_inode(sup), bin.inode()) << "the supervisor runs the new file";
    EXPECT_EQ(child_set(c).size(), 4U);
    expect_every_child_replaced(c, old_children, bin);
    for (int h = 0; h < 4; ++h) {
        EXPECT_EQ(c.request(h, "echo:after" + std::to_string(h)), "after" + std::to_string(h));
    }
    EXPECT_FALSE(c.log_contains("CRITICAL")) << c.log();
    EXPECT_FALSE(c.log_contains("WARNING")) << "an upgrade is no cause for warnings:\n" << c.log();
    EXPECT_TRUE(c.log_contains("INFO: the child this one replaces delivers h1's delayed messages"))
        << c.log();
    std::printf("upgrade: 32 lonnet-pattern clients and 4 of 3 s requests, 4 peers; without an "
                "upgrade: %llu requests, %llu failed, p99 %.2f ms; during one (lonctl upgrade "
                "took %.2f s): %llu requests, %llu failed, p99 %.2f ms (%.2fx); 3 s requests: "
                "%zu answered, %zu failed\n",
                static_cast<unsigned long long>(base.sent.load()),
                static_cast<unsigned long long>(base.sent.load() - base.ok.load()),
                base.percentile_ms(0.99), took, static_cast<unsigned long long>(r.sent.load()),
                static_cast<unsigned long long>(r.sent.load() - r.ok.load()), r.percentile_ms(0.99),
                r.percentile_ms(0.99) / base.percentile_ms(0.99), slow.answered_.size(),
                slow.failed_.size());
    c.check_sanitizer_reports();
}

// LON-CAPA requests may take minutes: one that is at lond when the upgrade
// begins keeps its link and gets lond's own answer (not con_lost, which
// lonnet would re-send through the new child: lond would run it twice).
TEST(Upgrade, ARequestLongerThanTheDrainGraceGetsItsReplyAndRunsOnce) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin, 2));
    const auto old_children = child_set(c);
    bin.install_copy();
    SlowRequest slow(c, 1, 12000, "slow");
    ASSERT_TRUE(at_lond(c, 1, {&slow})) << c.log();
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = lonctl(c, {"upgrade"});
    slow.join();

    EXPECT_EQ(slow.reply, slow.token) << c.log();
    EXPECT_EQ(lond_saw(c, 1, slow.line), 1U) << "lond ran it more than once";
    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    EXPECT_GT(since(t0), 5.0) << "the upgrade waited for the old child's request";
    expect_every_child_replaced(c, old_children, bin);
    expect_nothing_cut_short(c);
    c.check_sanitizer_reports();
}

// A delayed message at lond when the upgrade begins is the old child's to
// its answer, as a request is (issue 24): lond runs it once, its file goes,
// and its delivery is logged and recorded once, by the old child. Dropped at
// the hand-off, its file would stay and the new child would send it again:
// lond would run it twice.
TEST(Upgrade, ADelayedMessageAtLondWhenTheUpgradeBeginsIsDeliveredOnce) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin, 2));
    const auto old_children = child_set(c);
    bin.install_copy();
    const auto token = unique_token("spooled");
    const auto line = "sleep:9000:" + token; // longer than the drain grace (5 s)
    const auto name = std::to_string(std::time(nullptr)) + ".sleep" + token + "." + c.id(1);
    c.spool_file(name, line + "\n");
    ASSERT_TRUE(c.wait_received(1, line, 15s)) << c.log(); // in flight
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = lonctl(c, {"upgrade"});

    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    EXPECT_GT(since(t0), 5.0) << "the upgrade waited for the old child's delayed message";
    // Delivered: the file and its .sent marker gone (a second delivery, too,
    // would be over by then).
    EXPECT_TRUE(wait_until(
        [&] {
            return !std::filesystem::exists(c.spool() / name) &&
                   !std::filesystem::exists(c.spool() / (name + ".sent"));
        },
        30s))
        << c.log();
    EXPECT_EQ(lond_saw(c, 1, line), 1U) << "lond ran the delayed message more than once";
    const auto log = c.log();
    const std::string delivered = "Delayed " + line + ": >" + token + "<";
    EXPECT_EQ(count_of(log, delivered), 1U) << log;
    // Logged by an old child, the one that had it on the wire.
    const std::regex by(R"(\((\d+)\) \[)" + c.id(1) + R"(\] .*)" + delivered);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(log, m, by)) << log;
    EXPECT_EQ(old_children.count(static_cast<pid_t>(std::stol(m[1].str()))), 1U) << m[0];
    EXPECT_EQ(count_of(slurp(c.perm_log()), ":S:" + c.id(1) + ":" + line + ":"), 1U)
        << slurp(c.perm_log());
    expect_every_child_replaced(c, old_children, bin);
    expect_nothing_cut_short(c);
    c.check_sanitizer_reports();
}

// With lonc's defaults (links on demand) two slow requests to a host run on
// two links, the second opened for it: an upgrade hands over the requests of
// every link, the one opened on demand included, and quick requests made
// during the upgrade are answered (issue 25).
TEST(Upgrade, EveryLinkOpenedOnDemandKeepsItsRequestAcrossAnUpgrade) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin, 2));
    const auto old_children = child_set(c);
    bin.install_copy();
    SlowRequest slow_a(c, 1, 9000, "slowa");
    SlowRequest slow_b(c, 1, 9000, "slowb");
    ASSERT_TRUE(at_lond(c, 1, {&slow_a, &slow_b})) << c.log();
    // Both are at lond at once: the second is on a link opened on demand.
    ASSERT_TRUE(c.wait_status_at_least(1, "links_total", 2)) << c.log();

    std::atomic<bool> upgrading{true};
    std::atomic<int> quick_sent{0};
    std::vector<std::string> quick_wrong;
    std::thread quick([&] {
        while (upgrading) {
            const auto t = unique_token("quick");
            const auto r = c.request(1, "echo:" + t, 20s);
            ++quick_sent;
            if (r != t) {
                quick_wrong.push_back(t + " -> " + r.value_or("no reply"));
            }
        }
    });
    const auto run = lonctl(c, {"upgrade"});
    upgrading = false;
    quick.join();
    slow_a.join();
    slow_b.join();

    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    for (const auto* r : {&slow_a, &slow_b}) {
        EXPECT_EQ(r->reply, r->token) << c.log();
        EXPECT_EQ(lond_saw(c, 1, r->line), 1U) << "lond ran it more than once";
    }
    EXPECT_GT(quick_sent.load(), 0);
    EXPECT_TRUE(quick_wrong.empty()) << quick_wrong.size() << " quick requests failed, first "
                                     << (quick_wrong.empty() ? "" : quick_wrong.front());
    expect_every_child_replaced(c, old_children, bin);
    EXPECT_EQ(c.request(1, "echo:after"), "after");
    expect_nothing_cut_short(c);
    c.check_sanitizer_reports();
}

// A request the old child takes after it handed off (its client connected
// to the old socket) does not wait behind slow requests on every link: the
// old child opens a link for it, as it would before the upgrade.
TEST(Upgrade, TheOldChildOpensALinkForARequestItTakesWhileHandingOff) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin, 2));
    bin.install_copy();
    SlowRequest slow_a(c, 1, 15000, "slowa");
    SlowRequest slow_b(c, 1, 15000, "slowb");
    ASSERT_TRUE(at_lond(c, 1, {&slow_a, &slow_b})) << c.log();
    auto conn = c.client(1); // the old child's client; its line comes later
    ASSERT_TRUE(conn);
    std::optional<lonc::test::Run> run;
    std::thread upgrade([&] { run = lonctl(c, {"upgrade"}); });
    ASSERT_TRUE(c.wait_log("Handing " + c.id(1) + " over to a new child", 30s)) << c.log();
    // Past the hand-off's linger (0.1 s): the old child is draining. Were
    // the sleep too short the test would pass, never fail, for it.
    std::this_thread::sleep_for(500ms);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(conn->request("echo:quick", 30s), "quick") << c.log();
    EXPECT_LT(since(t0), 5.0) << "it waited behind a slow request";
    upgrade.join();
    slow_a.join();
    slow_b.join();
    ASSERT_TRUE(run);
    EXPECT_EQ(run->code, 0) << run->out << run->err << c.log();
    c.check_sanitizer_reports();
}

// A client of the old child that connects and says nothing (lonnet writes
// its line at once) does not hold the hand-over for --request-timeout.
TEST(Upgrade, ASilentClientOfTheOldChildDoesNotHoldTheUpgrade) {
    const Binary bin;
    auto o = upgrade_cluster(bin, 2);
    o.lonc_args = {"--request-timeout", "30"};
    Cluster c(o);
    bin.install_copy();
    auto silent = c.client(1);
    ASSERT_TRUE(silent);
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = lonctl(c, {"upgrade"});
    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    EXPECT_LT(since(t0), 20.0) << "the old child waited for its silent client\n" << c.log();
    EXPECT_EQ(c.request(1, "echo:after"), "after");
    c.check_sanitizer_reports();
}

// A lond the test scripts: it speaks the handshake (init, echo, ekey) and
// answers pong and echo:TOKEN, and the test holds a connection's handshake
// before its "ok", releases it, or cuts a connection. Connections are
// numbered from 1 in the order their "init" came.
class ScriptedLond {
public:
    ScriptedLond(const std::string& ip, std::uint16_t port, std::string id)
        : id_(std::move(id)), listener_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        const int one = 1;
        ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(listener_, 16) != 0) {
            throw std::runtime_error("scripted lond: cannot listen on " + ip);
        }
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~ScriptedLond() {
        {
            const std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        ::shutdown(listener_, SHUT_RDWR);
        acceptor_.join();
        {
            const std::lock_guard lock(mu_);
            for (auto& [n, fd] : fds_) {
                ::shutdown(fd, SHUT_RDWR);
            }
        }
        for (auto& t : threads_) {
            t.join();
        }
        ::close(listener_);
    }
    ScriptedLond(const ScriptedLond&) = delete;
    ScriptedLond& operator=(const ScriptedLond&) = delete;

    // Handshakes of connection n and later wait before "ok" until released.
    void hold_from(int n) {
        const std::lock_guard lock(mu_);
        hold_from_ = n;
    }
    void release(int n) {
        {
            const std::lock_guard lock(mu_);
            released_.insert(n);
        }
        cv_.notify_all();
    }
    // Closes connection n (lond restarted, as far as that link knows).
    void cut(int n) {
        const std::lock_guard lock(mu_);
        if (const auto it = fds_.find(n); it != fds_.end()) {
            ::shutdown(it->second, SHUT_RDWR);
        }
    }
    [[nodiscard]] int inits() {
        const std::lock_guard lock(mu_);
        return inits_;
    }

private:
    void accept_loop() {
        for (;;) {
            const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) {
                return;
            }
            const std::lock_guard lock(mu_);
            if (stopping_) {
                ::close(fd);
                return;
            }
            threads_.emplace_back([this, fd] { serve(fd); });
        }
    }
    void serve(int fd) {
        std::string in;
        int n = 0;
        char buf[4096];
        for (;;) {
            const auto got = ::recv(fd, buf, sizeof buf, 0);
            if (got <= 0) {
                break;
            }
            in.append(buf, static_cast<std::size_t>(got));
            for (auto nl = in.find('\n'); nl != std::string::npos; nl = in.find('\n')) {
                const auto line = in.substr(0, nl);
                in.erase(0, nl + 1);
                std::string reply;
                if (line == "init") {
                    const std::lock_guard lock(mu_);
                    n = ++inits_;
                    fds_[n] = fd;
                    reply = "1234567890";
                } else if (line == "1234567890") {
                    std::unique_lock lock(mu_);
                    cv_.wait(lock, [&] {
                        return stopping_ || n < hold_from_ || released_.count(n) != 0;
                    });
                    reply = "ok";
                } else if (line == "ekey") {
                    reply = "0123456789ABCDEF";
                } else if (line == "pong") {
                    reply = id_ + ":client";
                } else if (line.rfind("echo:", 0) == 0) {
                    reply = line.substr(5);
                } else {
                    reply = "unknown_cmd";
                }
                reply += '\n';
                (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
            }
        }
        const std::lock_guard lock(mu_);
        if (n > 0 && fds_[n] == fd) {
            fds_.erase(n);
        }
        ::close(fd);
    }

    std::string id_;
    int listener_;
    std::thread acceptor_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::thread> threads_;
    std::map<int, int> fds_; // connection number -> its socket
    std::set<int> released_;
    int inits_ = 0;
    int hold_from_ = 1 << 30;
    bool stopping_ = false;
};

// The old child's link comes up only after its successor has taken the
// socket path (it was reconnecting when the new child's link came up): it
// must not put its own socket back, nor remove the successor's.
TEST(Upgrade, AnOldChildWhoseLinkComesUpAfterTheHandOffLeavesTheSocketToItsSuccessor) {
    const Binary bin;
    auto o = upgrade_cluster(bin, 2);
    o.start_sims = false;
    o.start_lonc = false;
    Cluster c(o);
    c.start_sim(0);
    ScriptedLond lond(c.ip(1), c.port(), c.id(1));
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets(20s)) << c.log();
    ASSERT_EQ(lond.inits(), 1) << "the old child's link";
    bin.install_copy();
    lond.hold_from(2);

    test::Run run;
    std::thread upgrade([&] { run = lonctl(c, {"upgrade"}); });
    // 2: the new child's link (the old one's is up), held.
    ASSERT_TRUE(wait_until([&] { return lond.inits() >= 2; }, 30s)) << c.log();
    lond.cut(1); // the old child's link drops; its reconnect (3) is held
    ASSERT_TRUE(wait_until([&] { return lond.inits() >= 3; }, 10s)) << c.log();
    lond.release(2);
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(c.socket(1)); }, 10s, 1ms))
        << c.log();
    lond.release(3); // the old child's link comes up now, after the hand-off
    upgrade.join();
    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    // The old child has finished: the socket at the path is the new child's.
    for (int i = 0; i < 5; ++i) {
        const auto token = unique_token("after");
        EXPECT_EQ(c.request(1, "echo:" + token, 5s), token) << c.log();
    }
    EXPECT_FALSE(c.log_contains("Can't make server socket")) << c.log();
    c.check_sanitizer_reports();
}

TEST(Upgrade, ABinaryThatFailsItsCheckChangesNothing) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin));
    const pid_t sup = c.lonc_pid();
    const auto children = child_set(c);
    const ino_t running = exe_inode(sup);
    bin.install("#!/bin/sh\necho 'lonc: this build cannot read its configuration' >&2\nexit 7\n");

    std::atomic<bool> stop{false};
    LoadResult r;
    std::thread load([&] { run_load(c, lonnet_load(stop), r); });
    std::this_thread::sleep_for(300ms);
    const auto run = lonctl(c, {"upgrade"});
    std::this_thread::sleep_for(300ms);
    stop = true;
    load.join();

    EXPECT_EQ(run.code, 2) << run.out << run.err; // rejected
    EXPECT_NE(run.err.find("upgrade rejected"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("this build cannot read its configuration"), std::string::npos)
        << run.err;
    EXPECT_EQ(c.lonc_pid(), sup);
    EXPECT_EQ(exe_inode(sup), running) << "still the old program";
    EXPECT_EQ(child_set(c), children) << "every child kept";
    expect_no_failed_request(r);
    EXPECT_TRUE(c.log_contains("lonctl upgrade rejected; nothing changed")) << c.log();
    c.check_sanitizer_reports();
}

// The new binary's check may take a while (up to 30 s): meanwhile the
// supervisor still restarts a child that died and answers lonctl.
TEST(Upgrade, TheSupervisorServesWhileTheNewBinaryIsChecked) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin, 2));
    const auto before = child_set(c);
    ASSERT_EQ(before.size(), 2U);
    const pid_t victim = *before.begin();
    const auto go = bin.dir() / "go";
    bin.install("#!/bin/sh\nwhile [ ! -e '" + go.string() +
                "' ]; do sleep 0.05; done\necho 'lonc: not this build' >&2\nexit 7\n");
    test::Run run;
    std::thread upgrade([&] { run = lonctl(c, {"upgrade"}); });
    const bool checking = c.wait_log("lonctl upgrade: checking", 20s);
    ::kill(victim, SIGKILL);
    // Reaped and restarted while the check still runs; lonctl answered.
    const bool reaped =
        c.wait_log("Child " + std::to_string(victim) + " for server h\\d died", 10s);
    const bool served = wait_until(
        [&] { return c.request(0, "echo:a", 1s) == "a" && c.request(1, "echo:b", 1s) == "b"; },
        10s);
    const auto status = lonctl(c, {"status", "--timeout", "5"});
    const bool still_checking = !c.log_contains("upgrade rejected");
    std::filesystem::create_directory(go); // the check ends now
    upgrade.join();
    EXPECT_TRUE(checking) << c.log();
    EXPECT_TRUE(reaped && served) << "the dead child was not replaced during the check:\n"
                                  << c.log();
    EXPECT_EQ(status.code, 0) << "lonctl status during the check: " << status.err;
    EXPECT_TRUE(still_checking) << c.log();
    EXPECT_EQ(run.code, 2) << run.out << run.err;
    EXPECT_NE(run.err.find("not this build"), std::string::npos) << run.err;
    c.check_sanitizer_reports();
}

// A hosts.tab line lonc cannot use is skipped with a warning at start: the
// new binary is judged by that, not refused for it.
TEST(Upgrade, AHostsTabLineAStartSkipsDoesNotBlockTheUpgrade) {
    const Binary bin;
    auto o = upgrade_cluster(bin, 2);
    o.start_lonc = false;
    Cluster c(o);
    c.write_hosts(2, "short:line\n");
    c.start_lonc();
    ASSERT_TRUE(c.wait_all_sockets(20s)) << c.log();
    const pid_t sup = c.lonc_pid();
    const auto old_children = child_set(c);
    bin.install_copy();
    const auto run = lonctl(c, {"upgrade"});
    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    EXPECT_EQ(exe_inode(sup), bin.inode()) << "the supervisor runs the new file";
    EXPECT_EQ(child_set(c).size(), 2U);
    expect_every_child_replaced(c, old_children, bin);
    EXPECT_TRUE(c.log_contains("found problems a start skips; upgrading anyway:.*hosts.tab:"))
        << c.log();
    c.check_sanitizer_reports();
}

// An upgrade changes the binary only: a hosts.tab edit not reloaded yet
// (here: a peer removed) is not taken by the new supervisor; the next
// reload applies it, with its rules.
TEST(Upgrade, HostsTabEditsNotReloadedWaitForTheNextReload) {
    const Binary bin;
    auto o = upgrade_cluster(bin);
    o.hosts = 3;
    Cluster c(o);
    c.write_hosts(2); // h2 removed, not reloaded
    bin.install_copy();
    const auto run = lonctl(c, {"upgrade"});
    EXPECT_EQ(run.code, 0) << run.out << run.err << c.log();
    EXPECT_NE(run.out.find("3 of 3 peers handed over"), std::string::npos) << run.out;
    EXPECT_EQ(c.request(2, "echo:kept"), "kept") << "h2 is still served until a reload";
    EXPECT_FALSE(c.log_contains("no longer in hosts.tab")) << c.log();
    const auto reload = lonctl(c, {"reload"});
    EXPECT_EQ(reload.code, 0) << reload.err;
    EXPECT_NE(reload.out.find("removed 1 (h2)"), std::string::npos) << reload.out;
    EXPECT_TRUE(c.wait_no_socket(2)) << c.log();
    EXPECT_EQ(c.request(1, "echo:h1"), "h1");
    c.check_sanitizer_reports();
}

TEST(Upgrade, AChildKilledMidHandoverLeavesItsPeerServed) {
    const Binary bin;
    Cluster c(upgrade_cluster(bin));
    const pid_t sup = c.lonc_pid();
    const auto old_children = child_set(c);
    bin.install_copy();
    std::atomic<bool> stop{false};
    LoadResult r;
    std::thread load([&] { run_load(c, lonnet_load(stop), r); });

    test::Run run;
    std::thread upgrade([&] { run = lonctl(c, {"upgrade"}); });
    // The first new child to appear (once the check is over) is killed at once.
    ASSERT_TRUE(c.wait_log("passed its check; executing it", 20s)) << c.log();
    pid_t victim = 0;
    ASSERT_TRUE(wait_until(
        [&] {
            for (const pid_t p : c.children()) {
                if (old_children.count(p) == 0) {
                    victim = p;
                    return true;
                }
            }
            return false;
        },
        20s, 1ms));
    ::kill(victim, SIGKILL);
    upgrade.join();
    std::this_thread::sleep_for(200ms);
    stop = true;
    load.join();
    // The killed child's own clients may get nothing (it died holding
    // them); every other reply is still its own.
    EXPECT_GT(r.ok.load(), 0U) << r.summary();
    EXPECT_EQ(r.crossed.load(), 0U) << r.summary();
    EXPECT_EQ(r.wrong.load(), 0U) << r.summary();
    EXPECT_EQ(r.lost.load(), 0U) << r.summary();

    // Handed over already: its peer got a new child again; or not yet: the
    // peer kept its old child and lonctl says the upgrade failed.
    EXPECT_TRUE(run.code == 0 || run.code == 8) << run.code << run.out << run.err;
    if (run.code == 8) {
        EXPECT_NE(run.err.find("kept their old child"), std::string::npos) << run.err;
    }
    EXPECT_EQ(c.lonc_pid(), sup);
    for (int h = 0; h < 4; ++h) {
        const auto token = "served" + std::to_string(h);
        EXPECT_TRUE(wait_until([&] { return c.request(h, "echo:" + token, 2s) == token; }, 20s))
            << "host " << h << " not served; lonctl: " << run.out << run.err << c.log();
    }
    std::printf("killed child %d mid-handover; lonctl upgrade exited %d: %s%s; load: %s\n", victim,
                run.code, run.out.c_str(), run.err.c_str(), r.summary().c_str());
    c.check_sanitizer_reports();
}

} // namespace
} // namespace lonc::test
