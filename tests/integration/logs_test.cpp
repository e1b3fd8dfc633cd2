// lonc.log: rotation by rename (loncron's way and logrotate's), --log-level,
// and the journald-friendly stderr copy under --foreground (with sd-daemon(3)
// priority prefixes when stderr is the journal).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <signal.h>
#include <sys/stat.h>
#include <thread>

#include "ops_util.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Every line of a log file is whole and in the classic format.
void expect_well_formed(const std::string& text, const std::string& what) {
    if (!text.empty()) {
        EXPECT_EQ(text.back(), '\n') << what << " ends in a torn line";
    }
    const std::regex line_re(
        R"(^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} \(\d+\) \[[^\]]+\] \[[^\]]*\]: .*$)");
    for (const auto& line : lines_of(text)) {
        EXPECT_TRUE(std::regex_match(line, line_re)) << what << ": malformed line: " << line;
    }
}

// Drives events that each make exactly one known lonc.log line, in the
// supervisor and in every child, and remembers what it expects.
class LogTraffic {
public:
    explicit LogTraffic(Cluster& c, int hosts) : c_(c), hosts_(hosts) {}

    // One round: per host a delayed message with a unique token (the child
    // logs "Delayed echo:<token>: >...<") and an overlong client line (the
    // child logs a WARNING); one USR1 (the supervisor logs a line).
    void round(const std::filesystem::path& rotated) {
        for (int h = 0; h < hosts_; ++h) {
            const auto token = unique_token("rot");
            const auto name = std::to_string(std::time(nullptr)) + ".echo" + token + "." + c_.id(h);
            c_.spool_file(name, "echo:" + token + "\n");
            tokens_.push_back(token);
            auto client = c_.client(h);
            ASSERT_TRUE(client.has_value());
            const auto reply = client->request(std::string(200, 'x'), 10s);
            EXPECT_EQ(reply.value_or("(none)"), "con_lost");
            ++overlong_[c_.id(h)];
        }
        ++usr1_;
        c_.lonc().signal(SIGUSR1);
        // Wait for this round's lines, so USR1s do not coalesce and a round
        // is complete before the next step.
        ASSERT_TRUE(wait_until([&] { return complete(rotated); }, 20s))
            << "lines missing after a round:\n"
            << both(rotated);
    }

    [[nodiscard]] std::string both(const std::filesystem::path& rotated) const {
        return slurp(rotated) + slurp(c_.log_file());
    }
    [[nodiscard]] bool complete(const std::filesystem::path& rotated) const {
        const auto text = both(rotated);
        for (const auto& t : tokens_) {
            if (count_of(text, "Delayed echo:" + t + ": >") == 0) {
                return false;
            }
        }
        for (const auto& [id, n] : overlong_) {
            if (count_of(text, "[" + id + "] [") == 0 || overlong_lines(text, id) < n) {
                return false;
            }
        }
        return count_of(text, "USR1: Trying to establish connections again") >= usr1_;
    }
    [[nodiscard]] static std::size_t overlong_lines(const std::string& text,
                                                    const std::string& id) {
        std::size_t n = 0;
        for (const auto& line : lines_of(text)) {
            if (line.find(") [" + id + "] [") != std::string::npos &&
                line.find("WARNING: Client line longer than --max-line") != std::string::npos) {
                ++n;
            }
        }
        return n;
    }

    // Until stop, delayed messages for every host, one every few ms, so
    // lines are being written while the file is renamed. Each is logged by
    // a child exactly once ("Delayed echo:<token>").
    void background(const std::atomic<bool>& stop) {
        while (!stop) {
            for (int h = 0; h < hosts_; ++h) {
                const auto token = unique_token("bg");
                c_.spool_file(std::to_string(std::time(nullptr)) + ".echo" + token + "." + c_.id(h),
                              "echo:" + token + "\n");
                const std::lock_guard lock(mu_);
                background_.push_back(token);
            }
            std::this_thread::sleep_for(5ms);
        }
    }
    // Waits until every background message was delivered and logged.
    bool background_done(const std::filesystem::path& rotated) const {
        return wait_until(
            [&] {
                const auto text = both(rotated);
                const std::lock_guard lock(mu_);
                return std::all_of(background_.begin(), background_.end(), [&](const auto& t) {
                    return text.find("Delayed echo:" + t + ": >") != std::string::npos;
                });
            },
            30s, 50ms);
    }

    // The first line after a rotation: the supervisor's answer to a USR1
    // sent right after it. Returns how long it took to appear in the new
    // lonc.log (every write checks the path: the signal's handling is all
    // it measures, so a busy machine gets a few seconds).
    double first_line_after_rotation() {
        const auto t0 = Clock::now();
        ++usr1_;
        c_.lonc().signal(SIGUSR1);
        EXPECT_TRUE(wait_until(
            [&] {
                return slurp(c_.log_file()).find("USR1: Trying to establish connections again") !=
                       std::string::npos;
            },
            5s))
            << "no new lonc.log";
        return std::chrono::duration<double>(Clock::now() - t0).count();
    }

    // What was sent since mark() was called lands only in the new file.
    void mark() {
        mark_tokens_ = tokens_.size();
        mark_overlong_ = overlong_;
        mark_usr1_ = usr1_;
    }

    // Nothing lost, nothing twice: every expected line is in exactly one of
    // the two files, and whatever happened after mark() is in the new one.
    void check(const std::filesystem::path& rotated) const {
        const auto old_text = slurp(rotated);
        const auto new_text = slurp(c_.log_file());
        expect_well_formed(old_text, rotated.string());
        expect_well_formed(new_text, c_.log_file().string());
        for (std::size_t i = 0; i < tokens_.size(); ++i) {
            const auto needle = "Delayed echo:" + tokens_[i] + ": >";
            const auto in_old = count_of(old_text, needle);
            const auto in_new = count_of(new_text, needle);
            EXPECT_EQ(in_old + in_new, 1U) << tokens_[i];
            if (i >= mark_tokens_) {
                EXPECT_EQ(in_new, 1U) << tokens_[i] << " went to the rotated file";
            }
        }
        for (const auto& [id, n] : overlong_) {
            EXPECT_EQ(overlong_lines(old_text, id) + overlong_lines(new_text, id), n) << id;
            const auto after = n - (mark_overlong_.count(id) != 0 ? mark_overlong_.at(id) : 0);
            EXPECT_EQ(overlong_lines(new_text, id), after) << id;
        }
        {
            const std::lock_guard lock(mu_);
            EXPECT_GT(background_.size(), 10U);
            for (const auto& t : background_) {
                const auto needle = "Delayed echo:" + t + ": >";
                EXPECT_EQ(count_of(old_text, needle) + count_of(new_text, needle), 1U) << t;
            }
        }
        const std::string usr1 = "USR1: Trying to establish connections again";
        EXPECT_EQ(count_of(old_text, usr1) + count_of(new_text, usr1), usr1_);
        EXPECT_EQ(count_of(new_text, usr1), usr1_ - mark_usr1_);
        // Every process followed the rename: the supervisor and each child
        // wrote to the new file.
        EXPECT_NE(new_text.find(") [PARENT] ["), std::string::npos);
        for (int h = 0; h < hosts_; ++h) {
            EXPECT_NE(new_text.find(") [" + c_.id(h) + "] ["), std::string::npos) << c_.id(h);
        }
    }

private:
    Cluster& c_;
    int hosts_;
    std::vector<std::string> tokens_;
    std::map<std::string, std::size_t> overlong_;
    std::size_t usr1_ = 0;
    std::size_t mark_tokens_ = 0;
    std::map<std::string, std::size_t> mark_overlong_;
    std::size_t mark_usr1_ = 0;
    mutable std::mutex mu_;
    std::vector<std::string> background_;
};

TEST(LogRotation, LoncronRenameLosesNothingAndEveryProcessFollows) {
    Cluster c({.hosts = 3, .lonc_args = {"--max-line", "64"}});
    const auto rotated = c.dir() / "logs/lonc.log.1";
    LogTraffic traffic(c, 3);
    traffic.round(rotated);
    traffic.round(rotated);

    std::atomic<bool> stop{false};
    std::thread busy([&] { traffic.background(stop); });
    std::this_thread::sleep_for(300ms);

    // loncron: rename lonc.log to lonc.log.1, nothing else, while lines
    // are being written.
    std::filesystem::rename(c.log_file(), rotated);
    traffic.mark();
    const double took = traffic.first_line_after_rotation();
    EXPECT_LT(took, 3.0) << "the new lonc.log took " << took << " s";
    traffic.round(rotated);
    traffic.round(rotated);
    EXPECT_EQ(c.request(1, "echo:still").value_or(""), "still"); // still serving
    stop = true;
    busy.join();
    ASSERT_TRUE(traffic.background_done(rotated));
    traffic.check(rotated);

    // The new file belongs to the daemon's user, like the old one.
    struct stat st {};
    ASSERT_EQ(::stat(c.log_file().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, Cluster::www_uid());
}

TEST(LogRotation, LogrotateWithTheShippedConfigLosesNothing) {
    Cluster c({.hosts = 3, .lonc_args = {"--max-line", "64"}});
    // The shipped config, pointed at this cluster's log.
    const auto shipped = slurp(source_dir() / "conf/logrotate.d/lonc");
    ASSERT_FALSE(shipped.empty());
    for (const auto& line : lines_of(shipped)) {
        if (line.find('#') == std::string::npos) {
            EXPECT_EQ(line.find("copytruncate"), std::string::npos) << line;
            EXPECT_EQ(line.find("postrotate"), std::string::npos) << line;
        }
    }
    c.dir().write("logrotate.conf",
                  replaced(shipped, "/home/httpd/perl/logs/lonc.log", c.log_file().string()));
    ::chmod((c.dir() / "logrotate.conf").c_str(), 0644);

    LogTraffic traffic(c, 3);
    // Before any rotation the old file does not exist yet: count in
    // lonc.log alone.
    const auto none = c.dir() / "logs/not-rotated-yet";
    traffic.round(none);
    traffic.round(none);

    std::atomic<bool> stop{false};
    std::thread busy([&] { traffic.background(stop); });
    std::this_thread::sleep_for(300ms);
    const auto r = run("logrotate -v -f -s " + quote((c.dir() / "logrotate.state").string()) + " " +
                       quote((c.dir() / "logrotate.conf").string()));
    // nocreate: the next line lonc writes makes the new lonc.log.
    EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(c.log_file()); }, 10s));
    stop = true;
    busy.join();
    ASSERT_EQ(r.code, 0) << r.out;
    std::filesystem::path rotated;
    for (const auto& e : std::filesystem::directory_iterator(c.dir() / "logs")) {
        if (e.path().filename().string().rfind("lonc.log-", 0) == 0) {
            EXPECT_TRUE(rotated.empty()) << "two rotated files";
            rotated = e.path();
        }
    }
    ASSERT_FALSE(rotated.empty()) << r.out;
    EXPECT_EQ(rotated.filename().string().find(".gz"), std::string::npos) << "delaycompress";
    // nocreate: the new lonc.log is lonc's own (lines written since the
    // rename), owned by the daemon's user.
    struct stat st {};
    ASSERT_EQ(::stat(c.log_file().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, Cluster::www_uid());

    traffic.mark();
    const double took = traffic.first_line_after_rotation();
    EXPECT_LT(took, 3.0) << "the new lonc.log took " << took << " s";
    traffic.round(rotated);
    traffic.round(rotated);
    ASSERT_TRUE(traffic.background_done(rotated));
    traffic.check(rotated);
}

// ------------------------------------------------------------ --log-level

TEST(LogLevel, DebugLinesOnlyAtDebug) {
    {
        Cluster c({.hosts = 1, .lonc_args = {"--log-level", "debug"}});
        EXPECT_TRUE(c.wait_log("\\]: command line: \\S*lonc -c ", 5s)) << c.log();
    }
    {
        Cluster c({.hosts = 1});
        ASSERT_TRUE(c.wait_log("Done starting initial servers"));
        EXPECT_FALSE(c.log_contains("command line:")) << c.log();
    }
}

TEST(LogLevel, WarnDropsInformationAndKeepsWarnings) {
    Cluster c({.hosts = 2, .lonc_args = {"--log-level", "warn", "--max-line", "64"}});
    auto client = c.client(1);
    ASSERT_TRUE(client.has_value());
    EXPECT_EQ(client->request(std::string(100, 'y')).value_or(""), "con_lost");
    ASSERT_TRUE(c.wait_log("\\[h1\\] .*WARNING: Client line longer than --max-line"));
    EXPECT_FALSE(c.log_contains("Done starting initial servers")) << c.log();
    EXPECT_FALSE(c.log_contains("Secure connection initialized")) << c.log();
}

TEST(LogLevel, SettingsFileValueIsUsedAndTheCommandLineWins) {
    {
        Cluster c({.hosts = 1, .start_lonc = false});
        c.dir().write("lonc.ini", "log-level = debug\n");
        c.start_lonc({"--settings", (c.dir() / "lonc.ini").string()});
        ASSERT_TRUE(c.wait_all_sockets());
        EXPECT_TRUE(c.wait_log("\\]: command line: ", 5s)) << c.log();
    }
    {
        Cluster c({.hosts = 1, .start_lonc = false});
        c.dir().write("lonc.ini", "log-level = debug\n");
        c.start_lonc({"--settings", (c.dir() / "lonc.ini").string(), "--log-level", "info"});
        ASSERT_TRUE(c.wait_all_sockets());
        ASSERT_TRUE(c.wait_log("Done starting initial servers"));
        EXPECT_FALSE(c.log_contains("command line:")) << c.log();
    }
}

// ------------------------------------------------------- --foreground stderr

TEST(Foreground, EveryLogLineAlsoGoesToStderrWithoutATimestamp) {
    Cluster c({.hosts = 2});
    ASSERT_TRUE(c.wait_log("\\[h1\\] .*Secure connection initialized"));
    ASSERT_TRUE(c.wait_log("\\[h0\\] .*Secure connection initialized"));
    c.lonc().signal(SIGUSR1);
    ASSERT_TRUE(c.wait_log("USR1: Trying to establish connections again"));
    ASSERT_TRUE(c.stop_lonc().has_value());

    const auto err = slurp(c.dir() / "lonc.stderr");
    std::set<std::string> err_lines;
    const std::regex stderr_re(R"(^\[(PARENT|h0|h1)\] \S.*$)");
    const std::regex stamp_re(R"(\b\d\d:\d\d:\d\d\b)");
    for (const auto& line : lines_of(err)) {
        EXPECT_TRUE(std::regex_match(line, stderr_re)) << "stderr: " << line;
        EXPECT_FALSE(std::regex_search(line, stamp_re)) << "timestamp on stderr: " << line;
        err_lines.insert(line);
    }
    // Each lonc.log line, from the supervisor and the children, is on
    // stderr as "[role] message".
    const std::regex log_re(R"(^.{24} \(\d+\) \[([^\]]+)\] \[[^\]]*\]: (.*)$)");
    std::size_t n = 0;
    for (const auto& line : lines_of(c.log())) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(line, m, log_re)) << line;
        EXPECT_EQ(err_lines.count("[" + m[1].str() + "] " + m[2].str()), 1U)
            << "not on stderr: " << line;
        ++n;
    }
    EXPECT_GT(n, 8U);
    EXPECT_EQ(err_lines.count("[PARENT] Done starting initial servers"), 1U) << err;
    EXPECT_EQ(err_lines.count("[PARENT] CRITICAL: Shutting down"), 1U) << err;
}

// ------------------------------------------------------------- journald

// What systemd puts in JOURNAL_STREAM for a stderr connected to file.
std::string journal_stream_for(const std::filesystem::path& file) {
    struct stat st {};
    EXPECT_EQ(::stat(file.c_str(), &st), 0) << file;
    return "JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// lonc in the foreground at --log-level debug with env; makes lines of every
// priority: debug (the command line), info, a WARNING (an overlong client
// line), an "ERROR: " (a reload rejected) and a CRITICAL (the shutdown).
// Returns what lonc wrote to stderr.
std::string stderr_with_every_level(Cluster& c, const std::string& env) {
    c.start_lonc({"--log-level", "debug", "--max-line", "64"}, true, {env});
    EXPECT_TRUE(c.wait_all_sockets(20s)) << c.log();
    auto client = c.client(1);
    EXPECT_TRUE(client.has_value());
    if (client) {
        EXPECT_EQ(client->request(std::string(100, 'y')).value_or(""), "con_lost");
    }
    EXPECT_TRUE(c.wait_log("\\[h1\\] .*WARNING: Client line longer than --max-line"));
    c.dir().make_dir("sockets2", "www");
    c.dir().write("access.conf",
                  std::regex_replace(slurp(c.conf()), std::regex("/sockets\n"), "/sockets2\n"));
    c.lonc().signal(SIGHUP);
    EXPECT_TRUE(c.wait_log("ERROR: HUP: configuration not reloaded")) << c.log();
    EXPECT_TRUE(c.stop_lonc().has_value());
    return slurp(c.dir() / "lonc.stderr");
}

TEST(Journald, StderrLinesCarryTheirPriorityWhenStderrIsTheJournal) {
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto err_file = c.dir() / "lonc.stderr";
    c.dir().write("lonc.stderr", "");
    const auto err = stderr_with_every_level(c, journal_stream_for(err_file));

    // Every line: "<priority>[role] message", the priority the one its
    // level word says.
    const std::regex line_re(R"(^<([0-7])>\[(PARENT|h0|h1)\] (.*)$)");
    std::set<std::string> lines;
    for (const auto& line : lines_of(err)) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(line, m, line_re)) << "stderr: " << line;
        const auto text = m[3].str();
        const char priority = m[1].str()[0];
        if (text.rfind("CRITICAL: ", 0) == 0) {
            EXPECT_EQ(priority, '2') << line;
        } else if (text.rfind("ERROR: ", 0) == 0) {
            EXPECT_EQ(priority, '3') << line;
        } else if (text.rfind("WARNING: ", 0) == 0) {
            EXPECT_EQ(priority, '4') << line;
        } else {
            EXPECT_TRUE(priority == '6' || priority == '7') << line;
        }
        lines.insert(line);
    }
    auto has = [&](const std::string& regex) {
        const std::regex re(regex);
        return std::any_of(lines.begin(), lines.end(),
                           [&](const std::string& l) { return std::regex_search(l, re); });
    };
    EXPECT_TRUE(has(R"(^<7>\[PARENT\] command line: )")) << err;
    EXPECT_TRUE(has(R"(^<6>\[PARENT\] Done starting initial servers$)")) << err;
    EXPECT_TRUE(has(R"(^<6>\[h1\] .*Secure connection initialized)")) << err;
    EXPECT_TRUE(has(R"(^<4>\[h1\] WARNING: Client line longer than --max-line)")) << err;
    EXPECT_TRUE(has(R"(^<3>\[PARENT\] ERROR: HUP: configuration not reloaded: )")) << err;
    EXPECT_TRUE(has(R"(^<2>\[PARENT\] CRITICAL: Shutting down$)")) << err;

    // lonc.log is as always: the classic format, no prefix, and each of its
    // lines is on stderr with one.
    const auto log = c.log();
    expect_well_formed(log, "lonc.log");
    const std::regex log_re(R"(^.{24} \(\d+\) \[([^\]]+)\] \[[^\]]*\]: (.*)$)");
    std::size_t n = 0;
    for (const auto& line : lines_of(log)) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(line, m, log_re)) << line;
        EXPECT_NE(m[2].str().substr(0, 1), "<") << "prefix in lonc.log: " << line;
        const auto tail = "[" + m[1].str() + "] " + m[2].str();
        EXPECT_TRUE(std::any_of(
            lines.begin(), lines.end(),
            [&](const std::string& l) { return l.size() == tail.size() + 3 && l.ends_with(tail); }))
            << "not on stderr: " << line;
        ++n;
    }
    EXPECT_GT(n, 8U);
}

TEST(Journald, AStartThatFailsIsAnErrorInTheJournal) {
    // Errors lonc prints before its log exists (a broken access.conf here)
    // are priority 3, so journalctl -p err shows why lonc did not start.
    Cluster c({.hosts = 2, .start_lonc = false});
    c.dir().write("lonc.stderr", "");
    c.dir().write("access.conf",
                  std::regex_replace(slurp(c.conf()), std::regex("PerlSetVar londPort \\d+"),
                                     "PerlSetVar londPort 99999"));
    auto& p = c.start_lonc({}, true, {journal_stream_for(c.dir() / "lonc.stderr")});
    const auto st = p.wait(20s);
    ASSERT_TRUE(st.has_value());
    EXPECT_FALSE(st->exited(0));
    const auto err = slurp(c.dir() / "lonc.stderr");
    ASSERT_FALSE(err.empty());
    for (const auto& line : lines_of(err)) {
        EXPECT_EQ(line.rfind("<3>lonc: ", 0), 0U) << "stderr: " << line;
    }
    EXPECT_NE(err.find("londPort"), std::string::npos) << err;
}

TEST(Journald, NoPrefixWhenJournalStreamNamesAnotherFile) {
    // As when lonc runs from a shell that systemd started: the variable is
    // inherited, but stderr is no longer the journal.
    Cluster c({.hosts = 2, .start_lonc = false});
    const auto err = stderr_with_every_level(c, journal_stream_for(c.conf()));
    const std::regex line_re(R"(^\[(PARENT|h0|h1)\] \S.*$)");
    std::size_t n = 0;
    for (const auto& line : lines_of(err)) {
        EXPECT_TRUE(std::regex_match(line, line_re)) << "stderr: " << line;
        ++n;
    }
    EXPECT_GT(n, 8U);
    EXPECT_NE(err.find("\n[PARENT] CRITICAL: Shutting down\n"), std::string::npos) << err;
    EXPECT_NE(err.find("\n[PARENT] ERROR: HUP: configuration not reloaded: "), std::string::npos)
        << err;
}

// ------------------------------------------------- texts kept for loncron

// The lonc.log lines loncron and operators rely on (README, "Texts kept for
// loncron"), each pinned whole: the classic frame, the process that wrote
// it, the exact words, and the priority its level word gives it on a
// journald stderr. Code that renders them may change; these lines may not.
constexpr const char* stamp_re = R"(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})";

struct PinnedLine {
    pid_t pid = 0;
    std::string status;              // the text after "<localtime>: " in the second []
    std::vector<std::string> groups; // the message regex's own groups
};

// The lines of text from role that are exactly
// "<localtime> (<pid>) [<role>] [<localtime>: <status>]: <message>".
std::vector<PinnedLine> pinned(const std::string& text, const std::string& role,
                               const std::string& message) {
    const std::regex re(std::string("^") + stamp_re + R"( \((\d+)\) \[)" + role + R"(\] \[)" +
                        stamp_re + ": ([^\\]]*)\\]: (" + message + ")$");
    std::vector<PinnedLine> out;
    for (const auto& line : lines_of(text)) {
        std::smatch m;
        if (std::regex_match(line, m, re)) {
            PinnedLine p;
            p.pid = static_cast<pid_t>(std::stol(m[1].str()));
            p.status = m[2].str();
            for (std::size_t i = 4; i < m.size(); ++i) {
                p.groups.push_back(m[i].str());
            }
            out.push_back(std::move(p));
        }
    }
    return out;
}

TEST(LoncronTexts, EachIsLoggedWholeWithItsLevel) {
    Cluster c({.hosts = 3, .start_lonc = false});
    const auto err_file = c.dir() / "lonc.stderr";
    c.dir().write("lonc.stderr", "");
    c.start_lonc({"--max-attempts", "2"}, true, {journal_stream_for(err_file)});
    ASSERT_TRUE(c.wait_all_sockets(20s)) << c.log();
    ASSERT_TRUE(c.wait_log("Done starting initial servers"));
    const pid_t parent = c.lonc_pid();
    ASSERT_GT(parent, 0);

    // h1 and h2 each end their child twice with close_connection_exit: the
    // first exit is restarted at once, the second (2 of --max-attempts 2)
    // skips the peer.
    std::map<std::string, std::vector<pid_t>> closed; // host -> pids of the children it ended
    for (const int h : {1, 2}) {
        const auto id = c.id(h);
        for (int round = 1; round <= 2; ++round) {
            ASSERT_TRUE(wait_until([&] { return c.request(h, "ping") == id; }, 10s)) << c.log();
            (void)c.request(h, "close_connection_exit");
            const auto exited = "Child [0-9]+ for server " + id + " exited \\(" +
                                std::to_string(round) + " of 2 attempts\\)";
            ASSERT_TRUE(c.wait_log(exited)) << c.log();
            const auto lines = pinned(c.log(), "PARENT",
                                      "Child ([0-9]+) for server " + id + " exited \\(" +
                                          std::to_string(round) + " of 2 attempts\\)");
            ASSERT_EQ(lines.size(), 1U) << c.log();
            closed[id].push_back(static_cast<pid_t>(std::stol(lines[0].groups.at(0))));
        }
    }
    ASSERT_TRUE(c.wait_log("Skipped h1 h2 "));
    c.lonc().signal(SIGUSR1);
    ASSERT_TRUE(c.wait_log("USR1: Trying to establish connections again"));
    ASSERT_TRUE(c.wait_socket(1) && c.wait_socket(2)) << c.log(); // USR1 woke the skipped
    ASSERT_TRUE(c.stop_lonc().has_value());
    const auto log = c.log();

    // One line, from the supervisor, in full.
    auto parent_once = [&](const std::string& message) {
        const auto lines = pinned(log, "PARENT", message);
        EXPECT_EQ(lines.size(), 1U) << message << "\n" << log;
        for (const auto& l : lines) {
            EXPECT_EQ(l.pid, parent) << message;
        }
        return lines;
    };
    parent_once("Done starting initial servers");
    EXPECT_EQ(parent_once("USR1: Trying to establish connections again").at(0).status, "Sleeping");
    parent_once("CRITICAL: Shutting down");
    // Once each time a child is started: at start, after each first exit,
    // and at the USR1 for the two skipped.
    const std::map<std::string, std::size_t> starts = {{"h0", 1}, {"h1", 3}, {"h2", 3}};
    for (const auto& [id, n] : starts) {
        const auto lines = pinned(log, "PARENT", "Attempting to start child for server " + id);
        EXPECT_EQ(lines.size(), n) << id << "\n" << log;
        for (const auto& l : lines) {
            EXPECT_EQ(l.pid, parent);
        }
    }
    for (const std::string id : {"h1", "h2"}) {
        // The restart after the first exit says which attempt it is.
        parent_once("INFO: Trying to reconnect for " + id + " \\(2 of 2 attempts\\)");
        // Every child made its link, and the ones that ended said why.
        const auto secure =
            pinned(log, id, R"(Secure connection initialized \(link 1, local port [0-9]+\))");
        const auto close = pinned(log, id, "CRITICAL: Request Close Connection");
        ASSERT_EQ(close.size(), 2U) << log;
        for (std::size_t i = 0; i < close.size(); ++i) {
            EXPECT_EQ(close[i].pid, closed[id].at(i)) << id;
            EXPECT_EQ(close[i].status, "Request close connection");
            EXPECT_TRUE(std::any_of(secure.begin(), secure.end(),
                                    [&](const PinnedLine& l) { return l.pid == close[i].pid; }))
                << id << ": no Secure connection initialized from child " << close[i].pid;
        }
    }
    EXPECT_EQ(
        pinned(log, "h0", R"(Secure connection initialized \(link 1, local port [0-9]+\))").size(),
        1U)
        << log;
    // The skipped list: every skipped host followed by a space, in order.
    parent_once("WARNING: Skipped h1 ");
    parent_once("WARNING: Skipped h1 h2 ");
    // A child's exit 0 is information: loncron counts CRITICAL lines, and the
    // supervisor's only one is the shutdown.
    std::size_t critical = 0;
    for (const auto& line : lines_of(log)) {
        if (line.find(") [PARENT] [") != std::string::npos &&
            line.find("CRITICAL") != std::string::npos) {
            ++critical;
        }
    }
    EXPECT_EQ(critical, 1U) << log;

    // On a journald stderr the same lines carry the priority of their level
    // word: CRITICAL 2, WARNING 4, the rest information (6).
    const auto err = slurp(err_file);
    std::set<std::string> err_lines;
    for (const auto& line : lines_of(err)) {
        err_lines.insert(line);
    }
    auto on_stderr = [&](const std::string& line) {
        EXPECT_EQ(err_lines.count(line), 1U) << "not on stderr: " << line << "\n" << err;
    };
    on_stderr("<6>[PARENT] Done starting initial servers");
    on_stderr("<6>[PARENT] USR1: Trying to establish connections again");
    on_stderr("<2>[PARENT] CRITICAL: Shutting down");
    on_stderr("<6>[PARENT] Attempting to start child for server h0");
    on_stderr("<6>[PARENT] INFO: Trying to reconnect for h1 (2 of 2 attempts)");
    on_stderr("<4>[PARENT] WARNING: Skipped h1 ");
    on_stderr("<4>[PARENT] WARNING: Skipped h1 h2 ");
    on_stderr("<6>[PARENT] Child " + std::to_string(closed["h1"].at(0)) +
              " for server h1 exited (1 of 2 attempts)");
    on_stderr("<6>[PARENT] Child " + std::to_string(closed["h2"].at(1)) +
              " for server h2 exited (2 of 2 attempts)");
    on_stderr("<2>[h1] CRITICAL: Request Close Connection");
    const std::regex secure_err(
        R"(^<6>\[h0\] Secure connection initialized \(link 1, local port [0-9]+\)$)");
    EXPECT_TRUE(std::any_of(err_lines.begin(), err_lines.end(), [&](const std::string& l) {
        return std::regex_match(l, secure_err);
    })) << err;
}

} // namespace
} // namespace lonc::test
