// The benchmark run: which rows, in which order, the references measured
// alongside lonc, the fan-out and crowd runs, and the targets.
#pragma once

#include <filesystem>
#include <vector>

#include "bare_relay.hpp"
#include "report.hpp"

namespace lonc::bench {

struct SuiteOptions {
    double seconds = 1.5; // measured window per run
    double warmup = 0.3;
    unsigned repeats = 5;         // runs of each row at the focus client count (median)
    unsigned scaling_repeats = 3; // runs of each row at the other client counts
    unsigned focus = 32;          // the client count the targets are stated at
    std::vector<unsigned> clients{1, 2, 4, 8, 16, 32, 64, 128, 256};
    bool all_setups = true; // also --connections 4 and --pipeline 8 in the scaling rows
    bool syscalls = true;   // count syscalls per request with perf (when present)
    bool rows = true;       // false: only the crowd, mix and fan-out runs
    bool mix = true;        // quick requests beside slow ones, on demand vs one link (~20 s)
    unsigned mix_runs = 1;  // rounds of the mix
    unsigned fanout_peers = 1000;
    unsigned crowd_clients = 5000;
    unsigned crowd_requests = 2;
    std::filesystem::path out_dir; // results.csv, results.md, summary.csv, plot data
};

// Runs everything, prints rows as they finish, writes the files.
[[nodiscard]] Report run_suite(const Binaries& bin, const SuiteOptions& opts);

} // namespace lonc::bench
