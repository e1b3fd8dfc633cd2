// A child process: one peer's worker in its own event loop.
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/options.hpp"

namespace lonc {

struct ChildSetup {
    Settings settings;
    Peer peer;
    Peer self;
    Options opts;
    int parent_fd = -1;     // socketpair to the supervisor; -1 when standalone (--peer)
    bool successor = false; // replaces a running child of the peer (lonctl upgrade)
};

// Runs until the worker is done; returns the process exit code. Sets up
// this process's logging and signals itself.
int run_child(const ChildSetup& setup);

} // namespace lonc
