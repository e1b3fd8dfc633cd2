// lonc under systemd, without systemd (PID 1 here is not systemd): the unit
// is checked by systemd-analyze, and a datagram socket of the test's own
// stands in for NOTIFY_SOCKET.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ops_util.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::filesystem::path unit_file() {
    return build_dir() / "systemd/lonc.service";
}

// ------------------------------------------------------------------ the unit

TEST(Unit, NamesTheBuiltBinaryAndPassesSystemdAnalyzeVerify) {
    const auto unit = slurp(unit_file());
    ASSERT_FALSE(unit.empty()) << unit_file();
    EXPECT_NE(unit.find("\nExecStart=" + lonc_binary() + " --foreground\n"), std::string::npos)
        << unit;
    // MANPATH: verify also checks that Documentation=man:lonc(8) and
    // man:lonctl(1) exist; the build tree has them.
    const auto r = run("MANPATH=" + quote((build_dir() / "man").string()) +
                       " systemd-analyze verify " + quote(unit_file().string()));
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out, "") << "systemd-analyze verify complained";
}

TEST(Unit, VerifyCatchesABrokenUnit) {
    // The check above can fail: a unit naming a missing binary does not pass.
    TempDir dir("lonc-unit");
    dir.write("lonc.service",
              replaced(slurp(unit_file()), lonc_binary(), (dir / "no-such-lonc").string()));
    const auto r = run("MANPATH=" + quote((build_dir() / "man").string()) +
                       " systemd-analyze verify " + quote((dir / "lonc.service").string()));
    EXPECT_NE(r.code, 0) << r.out;
}

TEST(Unit, SecurityExposureIsAtMostTwoPointFive) {
    const auto r = run("systemd-analyze security --offline=true " + quote(unit_file().string()));
    ASSERT_EQ(r.code, 0) << r.out;
    std::smatch m;
    const std::regex re(R"(Overall exposure level for lonc\.service: ([0-9]+\.[0-9]+))");
    ASSERT_TRUE(std::regex_search(r.out, m, re)) << r.out;
    const double score = std::stod(m[1].str());
    std::printf("systemd-analyze security: overall exposure %.1f\n", score);
    EXPECT_LE(score, 2.5) << r.out;
}

TEST(Unit, SandboxSettingsTheIssueAsksForAreInForce) {
    const auto r =
        run("systemd-analyze security --offline=true --json=short " + quote(unit_file().string()));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto checks = nlohmann::json::parse(r.out);
    std::map<std::string, bool> set;
    for (const auto& c : checks) {
        set[c.at("name").get<std::string>()] = c.at("set").get<bool>();
    }
    for (const char* name :
         {"NoNewPrivileges=", "ProtectSystem=", "PrivateTmp=", "User=/DynamicUser=",
          "RestrictAddressFamilies=~AF_PACKET", "RestrictAddressFamilies=~AF_NETLINK",
          "RestrictAddressFamilies=~…", "SystemCallFilter=~@privileged", "SystemCallFilter=~@mount",
          "SystemCallFilter=~@debug", "SystemCallArchitectures=",
          "CapabilityBoundingSet=~CAP_SYS_ADMIN", "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)",
          "MemoryDenyWriteExecute=", "ProtectKernelTunables=", "ProtectProc="}) {
        ASSERT_TRUE(set.count(name) == 1) << "no check named " << name;
        EXPECT_TRUE(set[name]) << name << " is not in force";
    }
    // The rest of what the issue asks for, read from the unit itself.
    const auto unit = slurp(unit_file());
    for (const char* line :
         {"Type=notify", "ExecReload=" LONCTL_PATH " reload", "Restart=on-failure", "User=www",
          "LimitNOFILE=65536", "ProtectSystem=strict", "ProtectHome=tmpfs",
          "BindPaths=/home/httpd/perl/logs /home/httpd/sockets /home/httpd/html/lon-status",
          "ReadWritePaths=/home/httpd/perl/logs /home/httpd/sockets /home/httpd/html/lon-status",
          "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "PrivateTmp=yes"}) {
        EXPECT_NE(unit.find("\n" + std::string(line) + "\n"), std::string::npos) << line;
    }
}

// ----------------------------------------------------------- notify protocol

// The receiving end of NOTIFY_SOCKET: one datagram per sd_notify call.
class NotifySocket {
public:
    explicit NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        (void)std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            throw std::runtime_error("cannot bind " + path_.string());
        }
        ::chmod(path_.c_str(), 0666); // lonc sends as www
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

    // Reads datagrams until one has a line for which pred is true, or the
    // timeout; every datagram read is kept in history(). Datagrams already
    // read count too when they are at index from or later.
    template <typename Pred>
    bool wait_for(Pred pred, std::chrono::milliseconds timeout,
                  std::size_t from = std::string::npos) {
        if (from != std::string::npos && find(pred, from) != std::string::npos) {
            return true;
        }
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                continue;
            }
            char buf[4096];
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                continue;
            }
            history_.emplace_back(buf, buf + n);
            for (const auto& line : lines_of(history_.back())) {
                if (pred(line)) {
                    return true;
                }
            }
        }
    }
    bool wait_line(const std::string& want, std::chrono::milliseconds timeout,
                   std::size_t from = std::string::npos) {
        return wait_for([&](const std::string& l) { return l == want; }, timeout, from);
    }
    // Datagrams with a line equal to want, from index from on.
    [[nodiscard]] std::size_t count(const std::string& want, std::size_t from = 0) const {
        std::size_t n = 0;
        for (std::size_t i = from; i < history_.size(); ++i) {
            for (const auto& line : lines_of(history_[i])) {
                n += line == want ? 1U : 0U;
            }
        }
        return n;
    }
    // Index of the first datagram at or after from with a line for which
    // pred holds, or npos.
    template <typename Pred> [[nodiscard]] std::size_t find(Pred pred, std::size_t from = 0) const {
        for (std::size_t i = from; i < history_.size(); ++i) {
            for (const auto& line : lines_of(history_[i])) {
                if (pred(line)) {
                    return i;
                }
            }
        }
        return std::string::npos;
    }
    [[nodiscard]] const std::vector<std::string>& history() const { return history_; }
    [[nodiscard]] std::string dump() const {
        std::string out;
        for (const auto& d : history_) {
            out += "[" + d + "] ";
        }
        return out;
    }

private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::vector<std::string> history_;
};

// lonc in the foreground as systemd starts it: NOTIFY_SOCKET, and with a
// watchdog WATCHDOG_USEC plus WATCHDOG_PID, by default lonc's own pid (the
// shell execs lonc, so $$ is lonc's pid).
Process start_notified_lonc(Cluster& c, const NotifySocket& sock, long watchdog_usec,
                            const std::string& watchdog_pid = "$$") {
    const std::string wrapper =
        watchdog_usec > 0 ? "WATCHDOG_PID=" + watchdog_pid + "; export WATCHDOG_PID; exec \"$@\""
                          : "exec \"$@\"";
    std::vector<std::string> argv = {
        "/bin/sh",           "-c",     wrapper,       "sh",           lonc_binary(),    "-c",
        c.conf().string(),   "--user", "www",         "--foreground", "--mail-command", "",
        "--handshake-pause", "0.1",    "--retry-min", "0.05",         "--retry-max",    "0.5",
        "--probe-timeout",   "2"};
    SpawnOptions so;
    so.stderr_file = (c.dir() / "lonc.stderr").string();
    so.env.push_back("NOTIFY_SOCKET=" + sock.path().string());
    if (watchdog_usec > 0) {
        so.env.push_back("WATCHDOG_USEC=" + std::to_string(watchdog_usec));
    }
    for (const char* var : {"ASAN_OPTIONS", "UBSAN_OPTIONS"}) {
        const char* old = std::getenv(var);
        so.env.push_back(std::string(var) + "=" + (old != nullptr ? std::string(old) + ":" : "") +
                         "log_path=" + (c.dir() / "sanitizer/lonc").string());
    }
    return Process::spawn(argv, so);
}

TEST(Notify, ReadyStatusWatchdogReloadPairAndStopping) {
    Cluster c({.hosts = 2, .start_lonc = false});
    NotifySocket sock(c.dir() / "notify.sock");
    auto lonc = start_notified_lonc(c, sock, 300000); // WATCHDOG=1 every 150 ms
    const pid_t pid = lonc.pid();

    // READY=1 once the first probes are done and every child is forked.
    ASSERT_TRUE(sock.wait_line("READY=1", 20s)) << sock.dump();
    EXPECT_EQ(c.lonc_pid(), pid);
    EXPECT_EQ(c.children().size(), 2U);
    // STATUS= follows the links: eventually both peers up.
    ASSERT_TRUE(sock.wait_line("STATUS=2 of 2 peers up", 20s)) << sock.dump();
    ASSERT_TRUE(c.wait_all_sockets(10s));
    // WATCHDOG=1 keeps coming.
    const auto before = sock.count("WATCHDOG=1");
    ASSERT_TRUE(sock.wait_for(
        [&](const std::string&) { return sock.count("WATCHDOG=1") >= before + 3; }, 5s))
        << sock.dump();

    // HUP: RELOADING=1 (with MONOTONIC_USEC, as systemd wants it), then
    // READY=1 once the reload is done; the watchdog keeps running.
    const auto hup_at = sock.history().size();
    lonc.signal(SIGHUP);
    ASSERT_TRUE(sock.wait_line("RELOADING=1", 10s)) << sock.dump();
    const auto reloading =
        sock.find([](const std::string& l) { return l == "RELOADING=1"; }, hup_at);
    ASSERT_NE(reloading, std::string::npos);
    EXPECT_NE(sock.history()[reloading].find("\nMONOTONIC_USEC="), std::string::npos)
        << sock.history()[reloading];
    EXPECT_EQ(sock.find([](const std::string& l) { return l == "READY=1"; }, hup_at),
              std::string::npos)
        << "READY=1 before RELOADING=1: " << sock.dump();
    ASSERT_TRUE(sock.wait_line("READY=1", 20s)) << sock.dump();
    const auto ready_again =
        sock.find([](const std::string& l) { return l == "READY=1"; }, reloading + 1);
    ASSERT_NE(ready_again, std::string::npos);
    EXPECT_TRUE(lonc.running());
    EXPECT_EQ(c.lonc_pid(), pid);
    EXPECT_TRUE(c.log_contains("INFO: HUP: configuration reloaded: nothing changed"));
    ASSERT_TRUE(sock.wait_for(
        [&](const std::string&) { return sock.count("WATCHDOG=1", ready_again) >= 3; }, 5s))
        << sock.dump();
    EXPECT_EQ(c.children().size(), 2U); // the same children: nothing changed

    // A second HUP works the same.
    const auto hup2_at = sock.history().size();
    lonc.signal(SIGHUP);
    ASSERT_TRUE(sock.wait_line("RELOADING=1", 10s)) << sock.dump();
    ASSERT_TRUE(sock.wait_line("READY=1", 20s)) << sock.dump();
    const auto reloading2 =
        sock.find([](const std::string& l) { return l == "RELOADING=1"; }, hup2_at);
    ASSERT_NE(reloading2, std::string::npos);
    EXPECT_NE(sock.find([](const std::string& l) { return l == "READY=1"; }, reloading2 + 1),
              std::string::npos);
    EXPECT_EQ(c.lonc_pid(), pid);

    // TERM: STOPPING=1, exit 0.
    lonc.signal(SIGTERM);
    ASSERT_TRUE(sock.wait_line("STOPPING=1", 10s)) << sock.dump();
    const auto st = lonc.wait(15s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->exited(0)) << st->to_string();
}

TEST(Notify, PeersGoingDownShowInStatus) {
    Cluster c({.hosts = 3, .start_lonc = false});
    NotifySocket sock(c.dir() / "notify.sock");
    auto lonc = start_notified_lonc(c, sock, 0);
    ASSERT_TRUE(sock.wait_line("STATUS=3 of 3 peers up", 20s)) << sock.dump();
    c.kill_sim(2);
    ASSERT_TRUE(sock.wait_line("STATUS=2 of 3 peers up", 10s)) << sock.dump();
    c.start_sim(2);
    ASSERT_TRUE(sock.wait_line("STATUS=3 of 3 peers up", 20s)) << sock.dump();
    EXPECT_EQ(sock.count("WATCHDOG=1"), 0U) << "watchdog without WATCHDOG_USEC";
    lonc.signal(SIGTERM);
    ASSERT_TRUE(lonc.wait(15s).has_value());
}

TEST(Notify, WatchdogIsSilentWhenWatchdogPidNamesAnotherProcess) {
    Cluster c({.hosts = 1, .start_lonc = false});
    NotifySocket sock(c.dir() / "notify.sock");
    // As systemd's environment reads for a process that is not the main one.
    auto lonc = start_notified_lonc(c, sock, 200000, "1");
    ASSERT_TRUE(sock.wait_line("READY=1", 20s)) << sock.dump();
    (void)sock.wait_line("never sent", 800ms);
    EXPECT_EQ(sock.count("WATCHDOG=1"), 0U) << sock.dump();
    lonc.signal(SIGTERM);
    ASSERT_TRUE(lonc.wait(15s).has_value());
}

} // namespace
} // namespace lonc::test
