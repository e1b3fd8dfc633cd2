// The benchmark's own small LON-CAPA world on loopback: a scratch tree, a
// hosts.tab of n hosts on 127.x.y.z, lond-sim processes, lonc instances
// (each with its own access.conf, sockets and logs, all sharing the
// hosts.tab and the lond-sims) and bare relays. Host 0 is "this" server.
// lonc starts as root with --user www, as the integration tests do (as
// any other user, it runs as that user).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <netinet/in.h>
#include <string>
#include <vector>

#include "process.hpp"
#include "temp_dir.hpp"

namespace lonc::bench {

struct Binaries {
    std::string lonc;
    std::string lond_sim;
    std::string self;          // lonc-bench, for its --bare-relay mode
    std::string sanitizer_dir; // if set: ASan/UBSan reports of lonc and lond-sim go here
};

struct LoncInstance {
    std::string name;
    std::filesystem::path dir;
    test::Process proc;
    [[nodiscard]] std::filesystem::path socket(const std::string& host) const {
        return dir / "sockets" / host;
    }
    [[nodiscard]] std::filesystem::path log() const { return dir / "logs/lonc.log"; }
};

class World {
public:
    World(const Binaries& bin, int hosts);
    World(const World&) = delete;
    World& operator=(const World&) = delete;
    ~World();

    [[nodiscard]] int size() const { return static_cast<int>(ids_.size()); }
    [[nodiscard]] const std::string& id(int host) const {
        return ids_.at(static_cast<std::size_t>(host));
    }
    [[nodiscard]] const std::string& ip(int host) const {
        return ips_.at(static_cast<std::size_t>(host));
    }
    [[nodiscard]] in_addr addr(int host) const;
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
    [[nodiscard]] std::filesystem::path hosts_tab() const { return dir_ / "hosts.tab"; }

    // lond-sim for one host (--bind), or for all (host < 0: --serve-all).
    test::Process& start_sim(int host, const std::vector<std::string>& extra = {});
    // A lonc instance; extra are its options beyond the required ones
    // (-c, --user, -f, --mail-command ""). Does not wait for sockets.
    LoncInstance& start_lonc(const std::string& name, const std::vector<std::string>& extra);
    // True once every host in hosts has a socket in lonc's directory.
    bool wait_sockets(const LoncInstance& l, const std::vector<int>& hosts,
                      std::chrono::milliseconds timeout) const;
    // A bare relay for one host: its socket path once it is ready.
    std::filesystem::path start_relay(int host);
    [[nodiscard]] pid_t relay_pid(int host) const;
    [[nodiscard]] pid_t sim_pid(int host) const;
    void stop_lonc(LoncInstance& l);

private:
    [[nodiscard]] std::vector<std::string> env(const std::string& who) const;

    Binaries bin_;
    test::TempDir dir_;
    std::string user_;
    std::uint16_t port_;
    std::vector<std::string> ids_;
    std::vector<std::string> ips_;
    std::map<int, test::Process> sims_;
    std::map<int, test::Process> relays_;
    std::deque<LoncInstance> loncs_;
};

} // namespace lonc::bench
