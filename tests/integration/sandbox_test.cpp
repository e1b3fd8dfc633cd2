// lonc inside the unit's sandbox, emulated by sandbox-run (PID 1 here is not
// systemd): the system calls the unit's SystemCallFilter= allows (resolved
// by systemd-analyze), NoNewPrivileges, RestrictAddressFamilies,
// MemoryDenyWriteExecute, a read-only file system except the unit's
// ReadWritePaths, private /tmp and /home, started directly as www. lonc must
// start, relay, spool, write status, survive HUP, child deaths and a log
// rotation, and stop cleanly; a forbidden call would kill the process.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <signal.h>

#include "ops_util.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;

std::string sandbox_binary() {
    return SANDBOX_RUN_PATH;
}

// Every syscall group systemd knows, as `systemd-analyze syscall-filter`
// lists them (a group's name unindented, then its members indented).
const std::map<std::string, std::vector<std::string>>& groups() {
    static const auto all = [] {
        std::map<std::string, std::vector<std::string>> out;
        const auto r = run("systemd-analyze syscall-filter");
        EXPECT_EQ(r.code, 0) << r.out;
        std::string current;
        for (const auto& line : lines_of(r.out)) {
            const auto first = line.find_first_not_of(' ');
            if (first == std::string::npos || line[first] == '#') {
                continue;
            }
            if (first == 0) {
                current = line;
            } else if (!current.empty()) {
                out[current].push_back(line.substr(first));
            }
        }
        return out;
    }();
    return all;
}

// The names in a group, nested groups expanded.
std::set<std::string> expand(const std::string& group) {
    std::set<std::string> out;
    const auto it = groups().find(group);
    EXPECT_NE(it, groups().end()) << "unknown group " << group;
    if (it == groups().end()) {
        return out;
    }
    for (const auto& name : it->second) {
        if (name[0] == '@') {
            const auto sub = expand(name);
            out.insert(sub.begin(), sub.end());
        } else {
            out.insert(name);
        }
    }
    return out;
}

// What the unit's SystemCallFilter= lines allow, as systemd computes it: an
// allow list starts from @default; "~" lines take groups away.
std::set<std::string> unit_syscalls() {
    std::set<std::string> allowed = expand("@default");
    std::set<std::string> denied;
    bool any = false;
    for (const auto& line : lines_of(slurp(build_dir() / "systemd/lonc.service"))) {
        const std::string key = "SystemCallFilter=";
        if (line.rfind(key, 0) != 0) {
            continue;
        }
        any = true;
        std::string value = line.substr(key.size());
        const bool deny = !value.empty() && value[0] == '~';
        std::istringstream words(deny ? value.substr(1) : value);
        std::string w;
        while (words >> w) {
            const auto names = w[0] == '@' ? expand(w) : std::set<std::string>{w};
            (deny ? denied : allowed).insert(names.begin(), names.end());
        }
    }
    EXPECT_TRUE(any) << "no SystemCallFilter= in the unit";
    for (const auto& d : denied) {
        allowed.erase(d);
    }
    return allowed;
}

std::filesystem::path write_syscalls(const Cluster& c, const std::set<std::string>& names) {
    const auto path = c.dir() / "syscalls.txt";
    std::ofstream out(path);
    for (const auto& n : names) {
        out << n << "\n";
    }
    return path;
}

std::vector<std::string> sandbox_argv(const Cluster& c, const std::filesystem::path& syscalls) {
    const auto d = c.dir().path().string();
    // The unit's ReadWritePaths, here: lonDaemons/logs, lonSockDir,
    // lonDocRoot/lon-status. The rest of the test tree (access.conf,
    // hosts.tab) is only readable.
    return {sandbox_binary(),
            "--syscalls",
            syscalls.string(),
            "--ro",
            d,
            "--rw",
            d + "/logs",
            "--rw",
            d + "/sockets",
            "--rw",
            d + "/html/lon-status",
            "--user",
            "www",
            "--"};
}

Process start_sandboxed_lonc(Cluster& c, const std::filesystem::path& syscalls) {
    auto argv = sandbox_argv(c, syscalls);
    // The binary's directory, visible again in case the build tree lives
    // under /tmp or /home (a clone in a scratch directory), as an installed
    // /usr/sbin/lonc always is.
    argv.insert(argv.begin() + 1,
                {"--ro", std::filesystem::path(lonc_binary()).parent_path().string()});
    for (const auto& a :
         {lonc_binary(), std::string("-c"), c.conf().string(), std::string("--foreground"),
          std::string("--mail-command"), std::string(""), std::string("--handshake-pause"),
          std::string("0.1"), std::string("--retry-min"), std::string("0.05"),
          std::string("--retry-max"), std::string("0.5"), std::string("--probe-timeout"),
          std::string("2"), std::string("--max-line"), std::string("64")}) {
        argv.push_back(a);
    }
    SpawnOptions so;
    so.stderr_file = (c.dir() / "lonc.stderr").string();
    return Process::spawn(argv, so);
}

TEST(Sandbox, TheEmulationEnforcesWhatItClaims) {
    Cluster c({.hosts = 1, .start_sims = false, .start_lonc = false});
    const auto syscalls = write_syscalls(c, unit_syscalls());
    auto sh = [&](const std::string& script) {
        std::string cmd;
        for (const auto& a : sandbox_argv(c, syscalls)) {
            cmd += quote(a) + " ";
        }
        return run(cmd + "/bin/sh -c " + quote(script));
    };
    const auto d = c.dir().path().string();
    // Writable where the unit says, and nowhere else.
    EXPECT_EQ(sh("echo x > " + d + "/logs/ok && echo x > " + d + "/sockets/ok").code, 0);
    const auto ro = sh("echo x > " + d + "/not-allowed");
    EXPECT_NE(ro.code, 0);
    EXPECT_NE(ro.out.find("Read-only file system"), std::string::npos) << ro.out;
    EXPECT_NE(sh("touch /var/tmp/lonc-sandbox-probe").code, 0);
    // Private, empty, writable /tmp (the test tree re-bound inside it).
    EXPECT_EQ(sh("touch /tmp/probe && ls /tmp").out,
              c.dir().path().filename().string() + "\n" + "probe\n");
    // Running as www, without a way back.
    EXPECT_EQ(sh("id -un").out, "www\n");
    // A call outside the filter kills: the same shell without wait4 dies
    // (SIGSYS) when it waits for a child.
    auto without = unit_syscalls();
    without.erase("wait4");
    const auto cut = write_syscalls(c, without);
    std::string cmd;
    for (const auto& a : sandbox_argv(c, cut)) {
        cmd += quote(a) + " ";
    }
    const auto killed = run(cmd + "/bin/sh -c '/bin/true; echo survived'");
    EXPECT_EQ(killed.out.find("survived"), std::string::npos) << killed.out;
    EXPECT_FALSE(std::filesystem::exists(c.dir() / "not-allowed"));
}

TEST(Sandbox, LoncServesReloadsUpgradesRestartsAndStopsInsideTheUnitsSandbox) {
    Cluster c({.hosts = 3, .start_lonc = false});
    const auto syscalls = write_syscalls(c, unit_syscalls());
    auto lonc = start_sandboxed_lonc(c, syscalls);
    ASSERT_TRUE(c.wait_all_sockets(20s)) << slurp(c.dir() / "lonc.stderr") << c.log();
    const pid_t pid = lonc.pid();
    EXPECT_EQ(c.lonc_pid(), pid);
    EXPECT_EQ(process_uid(pid), static_cast<long>(Cluster::www_uid()));

    // Relay, plain and encrypted; a hostile line.
    for (int h = 0; h < 3; ++h) {
        EXPECT_EQ(c.request(h, "echo:plain" + std::to_string(h)).value_or(""),
                  "plain" + std::to_string(h));
        EXPECT_EQ(c.request(h, "encrypt:echo:secret").value_or(""), "secret");
        EXPECT_EQ(c.request(h, std::string(100, 'z')).value_or(""), "con_lost");
    }
    // Spool: delivered, recorded in lonnet.perm.log.
    const auto token = unique_token("sbx");
    c.spool_file(std::to_string(std::time(nullptr)) + ".echo" + token + ".h2",
                 "echo:" + token + "\n");
    EXPECT_TRUE(wait_until(
        [&] { return slurp(c.perm_log()).find(":S:h2:echo:" + token + ":") != std::string::npos; },
        10s))
        << c.log();
    // USR1: status files.
    lonc.signal(SIGUSR1);
    EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(c.status_json()); }, 10s));
    // A child killed from outside, and one that ends itself: both restarted.
    const auto kids = c.children();
    ASSERT_EQ(kids.size(), 3U);
    ::kill(kids[0], SIGKILL);
    EXPECT_EQ(c.request(1, "close_connection_exit").value_or("(closed)"), "(closed)");
    EXPECT_TRUE(wait_until([&] { return c.children().size() == 3; }, 10s));
    ASSERT_TRUE(c.wait_all_sockets(20s)) << c.log();
    // Log rotation: the new lonc.log is created inside the sandbox.
    std::filesystem::rename(c.log_file(), c.dir() / "logs/lonc.log.1");
    lonc.signal(SIGUSR1);
    EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(c.log_file()); }, 5s));
    // HUP: a reload inside the filter (a peer added), same pid.
    c.dir().write("hosts.tab",
                  slurp(c.hosts_tab()) + "h9:testdom:library:h9.example.invalid:" + c.ip(0) + "\n");
    lonc.signal(SIGHUP);
    EXPECT_TRUE(c.wait_log("INFO: HUP: configuration reloaded: peers added 1 \\(h9\\)", 10s))
        << c.log();
    ASSERT_TRUE(c.wait_all_sockets(20s)) << c.log();
    EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(c.dir() / "sockets/h9"); }, 20s))
        << c.log();
    EXPECT_EQ(c.request(2, "echo:after-hup").value_or(""), "after-hup");
    EXPECT_EQ(c.lonc_pid(), pid);
    EXPECT_TRUE(lonc.running());
    // lonctl upgrade: the binary checks itself and is executed again inside
    // the filter, with the same pid; every peer gets a new child.
    const auto before_upgrade = c.children();
    const auto up = lonctl(c, {"upgrade"});
    EXPECT_EQ(up.code, 0) << up.out << up.err << c.log();
    EXPECT_NE(up.out.find("4 of 4 peers handed over"), std::string::npos) << up.out;
    EXPECT_EQ(c.lonc_pid(), pid);
    for (const pid_t kid : c.children()) {
        EXPECT_EQ(std::count(before_upgrade.begin(), before_upgrade.end(), kid), 0);
    }
    EXPECT_EQ(c.request(2, "echo:after-upgrade").value_or(""), "after-upgrade");

    lonc.signal(SIGTERM);
    const auto st = lonc.wait(20s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->exited(0)) << st->to_string() << slurp(c.dir() / "lonc.stderr");
    EXPECT_FALSE(std::filesystem::exists(c.pid_file()));
    // No process of lonc was killed by the filter (SIGSYS) or failed to
    // write: the only death is the child the test killed.
    const auto all = slurp(c.dir() / "logs/lonc.log.1") + c.log();
    std::size_t deaths = 0;
    for (const auto& line : lines_of(all)) {
        if (line.find(" died: ") != std::string::npos) {
            ++deaths;
            EXPECT_NE(line.find("Child " + std::to_string(kids[0]) + " for server"),
                      std::string::npos)
                << line;
            EXPECT_NE(line.find("signal 9 "), std::string::npos) << line;
        }
    }
    EXPECT_EQ(deaths, 1U) << all;
    EXPECT_EQ(all.find("Bad system call"), std::string::npos) << all;
    EXPECT_EQ(all.find("Read-only file system"), std::string::npos) << all;
    EXPECT_EQ(all.find("Operation not permitted"), std::string::npos) << all;
    EXPECT_EQ(slurp(c.dir() / "lonc.stderr").find("sandbox-run:"), std::string::npos);
}

} // namespace
} // namespace lonc::test
