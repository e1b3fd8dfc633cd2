// The parent process: probes peers, forks one child per reachable peer
// (this host's own entry included), restarts children that die, reacts to
// signals, writes the status files. It never relays a request.
//
// Signals (all read from a signalfd; see README "Signals"):
//   INT, TERM  drain children (bounded), remove sockets and pid file, exit 0;
//              a second one exits at once
//   HUP        parse the config; if good, drain and re-exec the binary
//              (same pid); if broken, log why and keep running
//   USR1       reset restart counters, let down links retry now, probe
//              unreachable peers, write loncstatus.txt/.json
//   CHLD       reap, remove the dead child's socket, restart per policy
#pragma once

#include "lonc/config.hpp"
#include "lonc/daemon.hpp"
#include "lonc/options.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace lonc {

struct SupervisorSetup {
    Options opts;
    Config config;                 // already checked: config.ok()
    std::string exe;               // the binary to re-exec on HUP
    std::vector<std::string> argv; // its arguments (argv[0] included)
    std::filesystem::path cwd;     // where it was started (for relative paths)
    PidFile pid_file;
    Launcher launcher; // tells a waiting launcher we are up
};

// Runs the supervisor until it exits (or re-execs itself). Returns the
// process exit code.
int run_supervisor(SupervisorSetup setup);

} // namespace lonc
