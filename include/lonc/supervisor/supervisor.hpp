// The parent process: probes peers, forks one child per reachable peer
// (this host's own entry included), restarts children that die, reacts to
// signals, writes the status files. It never relays a request.
//
// Signals are read from a signalfd; what each one does is lonc(8), SIGNALS
// and RELOAD (the one place it is written). The children are Children's
// (children.hpp), a reload is Reloader's (reloader.hpp), lonctl upgrade
// is UpgradeRun's (upgrade_run.hpp); docs/design.md, "Inside the
// supervisor".
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
