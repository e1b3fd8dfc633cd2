// The test world: a small LON-CAPA installation on loopback, shared by the
// integration tests (Cluster builds on it) and lonc-bench. A scratch tree,
// a hosts.tab of n hosts on 127.A.B.x, lond-sim processes for them, and
// lonc trees (access.conf, logs/, sockets/, sockets/delayed/,
// html/lon-status/), each read by one lonc; every tree shares the
// hosts.tab and the lond-sims. Host 0 is "this" server (lonc's lonHostID).
//
// As root, lonc runs with --user www (the directories it writes belong to
// www); as any other user, it runs as that user.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <vector>

#include "process.hpp"
#include "temp_dir.hpp"

namespace lonc::test {

// Paths of the binaries under test (set by CMake).
[[nodiscard]] std::string lonc_binary();
[[nodiscard]] std::string lond_sim_binary();

struct WorldOptions {
    int hosts = 2;                  // this host + peers
    std::vector<std::string> ids{}; // host ids (default: id_prefix + index)
    std::string id_prefix = "h";
    std::string domain = "testdom";
    std::string dir_prefix = "lonc-it";
    std::string lonc = lonc_binary();
    std::string lond_sim = lond_sim_binary();
    // Where ASan/UBSan reports of lonc and lond-sim go (log_path): nullopt
    // for dir()/sanitizer, "" for nowhere (the environment as it is).
    std::optional<std::string> sanitizer_dir{};
};

// One lonc tree and the lonc reading it.
struct LoncInstance {
    std::string name;
    std::filesystem::path dir;
    Process proc;
    [[nodiscard]] std::filesystem::path conf() const { return dir / "access.conf"; }
    [[nodiscard]] std::filesystem::path socket(const std::string& host) const {
        return dir / "sockets" / host;
    }
    [[nodiscard]] std::filesystem::path log() const { return dir / "logs/lonc.log"; }
};

class World {
public:
    explicit World(WorldOptions opts);
    ~World();
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    [[nodiscard]] int size() const { return static_cast<int>(ids_.size()); }
    [[nodiscard]] const std::string& id(int host) const {
        return ids_.at(static_cast<std::size_t>(host));
    }
    [[nodiscard]] std::string ip(int host) const;
    [[nodiscard]] in_addr addr(int host) const;
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] const TempDir& dir() const { return dir_; }
    [[nodiscard]] std::filesystem::path hosts_tab() const { return dir_ / "hosts.tab"; }
    // The user lonc runs as (--user) and its directories belong to.
    [[nodiscard]] const std::string& user() const { return user_; }
    [[nodiscard]] const WorldOptions& options() const { return opts_; }

    // Rewrites hosts.tab with the first n hosts (plus extra raw lines).
    void write_hosts(int n, const std::string& extra = {}) const;

    // Writes a lonc tree at dir()/rel ("": dir() itself) with an access.conf
    // for host 0 and returns its directory.
    std::filesystem::path make_lonc_tree(const std::string& rel) const;
    // The start of lonc's command line for a tree: lonc -c <its access.conf>
    // --user <user> --mail-command "".
    [[nodiscard]] std::vector<std::string> lonc_command(const std::filesystem::path& tree) const;
    // A lonc instance with its own tree dir()/lonc-<name>: lonc_command plus
    // -f and extra. Does not wait for sockets.
    LoncInstance& start_lonc(const std::string& name, const std::vector<std::string>& extra);
    // True once every host in hosts has a socket in the instance's tree.
    bool wait_sockets(const LoncInstance& l, const std::vector<int>& hosts,
                      std::chrono::milliseconds timeout) const;
    void stop_lonc(LoncInstance& l);

    // lond-sim for one host (--bind its ip --id its id, then extra), or for
    // every host (host < 0: --serve-all); waits for "ready". A sim that
    // runs for the host already is stopped first.
    Process& start_sim(int host, const std::vector<std::string>& extra = {});
    void kill_sim(int host);
    [[nodiscard]] Process& sim(int host) { return sims_.at(host); }
    [[nodiscard]] pid_t sim_pid(int host) const;
    void stop_sims();

    // "NAME=value" entries that send sanitizer reports of who to the
    // sanitizer directory (none when there is none).
    [[nodiscard]] std::vector<std::string> sanitizer_env(const std::string& who) const;
    // The non-empty sanitizer reports: path and text.
    [[nodiscard]] std::vector<std::pair<std::filesystem::path, std::string>>
    sanitizer_reports() const;

private:
    WorldOptions opts_;
    TempDir dir_;
    std::string user_;
    std::string net_; // "127.A.B."
    std::uint16_t port_;
    std::vector<std::string> ids_;
    std::map<int, Process> sims_;
    std::deque<LoncInstance> loncs_;
};

// TERM, then KILL after timeout; reaps it.
void stop_process(Process& p, std::chrono::milliseconds timeout = std::chrono::seconds(10));

} // namespace lonc::test
