// A local LON-CAPA cluster for black-box tests: the test world (world.hpp)
// with one lonc tree at its top, lond-sim peers on 127.x.y.z, and the real
// lonc started as root with --user www (directories it writes belong to www).
//
// Host 0 is "this" server (lonc's own lonHostID); hosts 1..n-1 are peers.
// Every host, this one included, gets a child and a socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "line_client.hpp"
#include "process.hpp"
#include "temp_dir.hpp"
#include "world.hpp"

namespace lonc::test {

struct ClusterOptions {
    int hosts = 2;                       // this host + peers
    std::vector<std::string> ids{};      // host ids (default h0, h1, ...)
    bool start_sims = true;              // one lond-sim per host
    std::vector<std::string> sim_args{}; // extra lond-sim options, every host
    bool start_lonc = true;
    std::vector<std::string> lonc_args{};    // extra lonc options
    bool foreground = true;                  // -f (a child of the test)
    bool wait_sockets = true;                // wait until every host has a socket
    std::vector<std::string> lonc_wrapper{}; // a command lonc runs under (prlimit, valgrind)
    std::string lonc_binary{};               // "" : the one built here
    // false: lonc's own defaults, not start_lonc's short test timings (and
    // no settings file either); the config, user and mailer are still set.
    bool test_defaults = true;
};

class Cluster : public World {
public:
    explicit Cluster(ClusterOptions opts = {});
    ~Cluster();
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    [[nodiscard]] static unsigned www_uid();
    [[nodiscard]] std::filesystem::path conf() const { return dir() / "access.conf"; }
    [[nodiscard]] std::filesystem::path socket(int host) const;
    [[nodiscard]] std::filesystem::path spool() const { return dir() / "sockets/delayed"; }
    [[nodiscard]] std::filesystem::path log_file() const { return dir() / "logs/lonc.log"; }
    [[nodiscard]] std::filesystem::path perm_log() const { return dir() / "logs/lonnet.perm.log"; }
    [[nodiscard]] std::filesystem::path pid_file() const { return dir() / "logs/lonc.pid"; }
    [[nodiscard]] std::filesystem::path status_txt() const;
    [[nodiscard]] std::filesystem::path status_json() const;
    [[nodiscard]] std::filesystem::path sim_log(int host) const;

    // lond-sim for one host (World::start_sim with --log sim_log(host), the
    // cluster's sim_args, then extra).
    Process& start_sim(int host, const std::vector<std::string>& extra = {});

    // lonc with the cluster's config, the test defaults (unless
    // test_defaults is false) and extra args;
    // env: extra "NAME=value" entries. Its stdout and stderr go to
    // dir()/lonc.stderr.
    Process& start_lonc(const std::vector<std::string>& extra = {}, bool foreground = true,
                        const std::vector<std::string>& env = {});
    // Runs lonc to completion (for exit-code tests).
    ExitStatus run_lonc(const std::vector<std::string>& args,
                        std::chrono::milliseconds timeout = std::chrono::seconds(20));
    [[nodiscard]] Process& lonc() { return lonc_; }
    // The supervisor's pid from lonc.pid (0 if none).
    [[nodiscard]] pid_t lonc_pid() const;
    // Pids of lonc processes: the supervisor and its children.
    [[nodiscard]] std::vector<pid_t> children() const;
    // The supervisor (from lonc.pid) and its children.
    [[nodiscard]] std::vector<pid_t> lonc_pids() const;
    // Their resident memory together, KiB.
    [[nodiscard]] long lonc_rss_kib() const;
    // Sends TERM and waits for the supervisor to exit.
    std::optional<ExitStatus>
    stop_lonc(std::chrono::milliseconds timeout = std::chrono::seconds(15));

    bool wait_socket(int host, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    bool wait_no_socket(int host,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    bool wait_all_sockets(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

    // lonnet's pattern: connect, one line, read one line, close.
    std::optional<std::string>
    request(int host, const std::string& line,
            std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    [[nodiscard]] std::optional<LineClient> client(int host) const;

    [[nodiscard]] std::string log() const;
    [[nodiscard]] bool log_contains(const std::string& regex) const;
    bool wait_log(const std::string& regex,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    // Lines of lond-sim's --log for a host: client id, raw line, decrypted.
    [[nodiscard]] std::vector<std::vector<std::string>> sim_requests(int host) const;
    // Waits until host's lond-sim has received line (decrypted): the event a
    // test needs before it acts on a request being on lond's side.
    bool wait_received(int host, const std::string& line,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    // A number in host's entry of a fresh `lonctl status --json` ("queue":
    // requests waiting for a link), or nullopt (lonctl failed, no answer).
    [[nodiscard]] std::optional<long> status_number(int host, const std::string& field) const;
    // Waits until that number is at least n.
    bool wait_status_at_least(int host, const std::string& field, long n,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

    // Drops a file into delayed/ at once (written, then renamed in): for
    // tests of the spool's reading, with lonc's --spool-min-age 0.
    std::filesystem::path spool_file(const std::string& name, const std::string& content) const;

    // What lonnet's critical() does when it spools cmd for host (PROTOCOL.md
    // section 4): a truncating open of delayed/<epoch>.<middle>.<host> (or
    // of name, when given), "cmd\n", close; 2 s later the first line is read
    // back, and "D:<host>:<cmd>" (it was cmd) or "F:<host>:<cmd>" (it was
    // not) is appended to lonnet.perm.log. Blocks for those 2 s.
    struct LonnetSpool {
        std::string name;
        bool delayed = false; // D (con_delayed); false: F (con_failed)
    };
    LonnetSpool lonnet_spool(int host, const std::string& cmd, std::string name = {}) const;
    // lonnet's file name for cmd to host at epoch now.
    [[nodiscard]] std::string lonnet_spool_name(int host, const std::string& cmd,
                                                std::time_t now) const;
    // Appends "<epoch>:<message>:<localtime>" to lonnet.perm.log, as lonnet.
    void perm_log_append(const std::string& message) const;

    // Stops lonc (TERM, then KILL) and the lond-sims.
    void stop_everything();
    // Fails the test for every non-empty sanitizer log of our processes.
    void check_sanitizer_reports() const;

private:
    ClusterOptions opts_;
    Process lonc_;
};

// What a command run to completion printed, and how it exited (-1: killed).
struct Run {
    int code = -1;
    std::string out;
    std::string err;
};

// Runs the real lonctl with the cluster's access.conf and args; as user
// (with no supplementary groups) when one is named. Its output is also left
// in dir()/lonctl.out and lonctl.err.
Run lonctl(const Cluster& c, const std::vector<std::string>& args, const std::string& user = {});

// A token unique within this test process.
[[nodiscard]] std::string unique_token(const std::string& prefix = "t");

// Seconds elapsed since t0.
[[nodiscard]] inline double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace lonc::test

namespace lonc::test {

// Silently drops packets to one address (an nft rule in a table of its
// own), so probes and connects time out instead of being refused.
class DropRule {
public:
    explicit DropRule(const std::string& ip);
    ~DropRule();
    DropRule(const DropRule&) = delete;
    DropRule& operator=(const DropRule&) = delete;

private:
    std::string table_;
};

// A tmpfs mounted over a directory for one test (owned by www, with mode),
// unmounted lazily however the test ends, even while lonc holds files there.
// Declare it after the Cluster, so that it goes first.
class SmallTmpfs {
public:
    SmallTmpfs(std::filesystem::path dir, const std::string& size, unsigned mode = 0755);
    ~SmallTmpfs();
    SmallTmpfs(const SmallTmpfs&) = delete;
    SmallTmpfs& operator=(const SmallTmpfs&) = delete;
    // mount -o remount,ro / rw
    void set_read_only(bool ro) const;

private:
    std::filesystem::path dir_;
};

// Fills the file system holding dir to the last block (a file "filler").
void fill_up(const std::filesystem::path& dir);

// The uid a process runs as (from /proc), or -1.
[[nodiscard]] long process_uid(pid_t pid);

// How often needle occurs in text (overlapping occurrences counted).
[[nodiscard]] std::size_t count_of(const std::string& text, const std::string& needle);

// TCP connections lonc made to host's lond-sim (its "init" lines).
[[nodiscard]] long connects(const Cluster& c, int host);

} // namespace lonc::test
