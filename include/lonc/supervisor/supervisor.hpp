// The parent process: probes peers, forks one child per reachable peer
// (this host's own entry included), restarts children that die, reacts to
// signals, writes the status files. It never relays a request.
//
// Signals (all read from a signalfd; see lonc(8), SIGNALS):
//   INT, TERM  drain children (bounded), remove sockets and pid file, exit 0;
//              a second one exits at once
//   HUP, USR2  reload: read and check the whole configuration again; if it
//              is broken or needs a restart, log why (ERROR, file:line) and
//              change nothing; else apply only the difference (see reload()
//              in supervisor.cpp). lonctl reload does the same and waits.
//   USR1       reset restart counters, let down links retry now, probe
//              unreachable peers, write loncstatus.txt/.json
//   CHLD       reap, remove the dead child's socket, restart per policy
//
// lonctl upgrade (no signal) checks the binary at `exe`, executes it with
// the same pid, and replaces every child peer by peer (upgrade.hpp).
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/options.hpp"
#include "lonc/runtime/daemon.hpp"
#include "lonc/supervisor/upgrade.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lonc {

struct SupervisorSetup {
    Options opts;
    Config config;                 // already checked: config.ok()
    std::vector<std::string> argv; // the command line, read again at each reload
    std::filesystem::path cwd;     // where it was started (for relative paths)
    PidFile pid_file;
    Launcher launcher;                // tells a waiting launcher we are up
    std::string exe;                  // the executable it was started from (lonctl upgrade runs it)
    std::optional<Handover> handover; // set: executed by lonctl upgrade
};

// Runs the supervisor until it exits. Returns the process exit code.
int run_supervisor(SupervisorSetup setup);

} // namespace lonc
