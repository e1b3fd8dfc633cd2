// The cost floor of relaying on this machine: the simplest correct
// single-threaded epoll relay. UNIX socket in, one TCP link out to lond
// (after the init/challenge handshake), one request on the link at a time,
// replies back to their clients in order. No encryption, no logging, no
// timeouts, no limits: lonc is compared against it, so it must stay this
// simple (and correct: every reply goes to the client that asked).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <netinet/in.h>
#include <string>

#include "world.hpp"

namespace lonc::bench {

// Serves until killed; prints "ready" on stdout once the socket listens.
// Returns non-zero (with a message on stderr) if it cannot start or the
// link breaks.
int run_bare_relay(const std::string& socket_path, in_addr lond, std::uint16_t port,
                   in_addr source);

struct Binaries {
    std::string lonc;
    std::string lond_sim;
    std::string self;          // lonc-bench, for its --bare-relay mode
    std::string sanitizer_dir; // if set: ASan/UBSan reports of lonc and lond-sim go here
};

// The benchmark's world: the test world (hosts b0, b1, ... in domain
// benchdom) and bare relays, each for one host.
class BenchWorld : public test::World {
public:
    BenchWorld(const Binaries& bin, int hosts);

    // A bare relay for one host: its socket path once it is ready.
    std::filesystem::path start_relay(int host);
    [[nodiscard]] pid_t relay_pid(int host) const;

private:
    std::string self_;
    std::map<int, test::Process> relays_;
};

} // namespace lonc::bench
