// What a benchmark run measured, and its outputs: the table on stdout,
// results.csv, results.md (embedded in docs/performance.md by scripts/bench) and
// the data files gnuplot draws from.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "measure.hpp"

namespace lonc::bench {

enum class Server { direct, bare, lonc };

// What serves the clients in one row.
struct Setup {
    Server server = Server::lonc;
    unsigned connections = 1;
    unsigned pipeline = 1;
    [[nodiscard]] std::string label() const;
    bool operator==(const Setup&) const = default;
};

struct Case {
    Setup setup;
    Pattern pattern = Pattern::persistent;
    unsigned clients = 1;
    bool encrypt = false;
    bool big = false; // 64 KiB replies (bytes:65536:TOKEN)
    unsigned service_us = 0;
    [[nodiscard]] std::string label() const;
    bool operator==(const Case&) const = default;
};

constexpr double na = std::numeric_limits<double>::quiet_NaN();

struct Row {
    Case c;
    unsigned runs = 0;
    double rps = 0, p50_us = 0, p99_us = 0, max_us = 0;
    double server_cpu_us = na;   // per request: lonc (all processes) or the relay
    double server_wakeups = na;  // voluntary context switches per request
    double server_syscalls = na; // per request (perf), when measured
    double sim_cpu_us = na;
    double client_cpu_us = na;
    std::uint64_t requests = 0, errors = 0, crossed = 0;
    std::string first_bad;
    // Each run's requests/s and server CPU per request, in run order: the
    // targets pair run i of one row with run i of another.
    std::vector<double> run_rps, run_cpu;
    // A row of the throughput-vs-clients passes (run apart from the
    // repeated rows the targets use, which may hold the same case).
    bool scaling = false;
};

// Folds several runs of one case into a row (medians; errors summed).
[[nodiscard]] Row make_row(const Case& c, const std::vector<LoadResult>& runs);

struct FanOut {
    unsigned peers = 0;
    unsigned sockets = 0; // present at the end of the wait
    double seconds = na;  // lonc start to all sockets (NaN: not all)
    unsigned children = 0;
    double pss_kib_mean = na, private_dirty_kib_mean = na, private_dirty_kib_max = na;
    double parent_pss_kib = na, parent_private_dirty_kib = na;
    // CPU time until every socket was there (schedstat): robust where the
    // wall time depends on what else runs on the machine.
    double parent_cpu_ms = na, child_cpu_ms_mean = na, sim_cpu_ms = na;
    double child_faults_mean = na; // minor page faults per child
};

struct Crowd {
    unsigned clients = 0, served = 0;
    std::uint64_t requests = 0, errors = 0, crossed = 0, connect_errors = 0;
    double seconds = 0, p99_us = 0, max_us = 0;
};

struct Goal {
    std::string what;
    double value = na;
    double limit = 0;
    bool at_least = true; // value >= limit (else <=)
    std::string unit;
    [[nodiscard]] bool met() const {
        return !std::isnan(value) && (at_least ? value >= limit : value <= limit);
    }
};

struct Report {
    std::string date, machine, kernel, cpu_model, load_before, load_after, settings;
    unsigned cpus = 0;
    unsigned focus = 32; // the client count the targets are stated at
    std::vector<Row> rows;
    FanOut fanout;
    Crowd crowd;
    std::vector<Goal> goals;
    std::uint64_t lonc_log_lines = 0; // lines lonc logged while under load
};

// One table line for stdout as a row finishes.
[[nodiscard]] std::string row_header();
[[nodiscard]] std::string row_line(const Row& r);

void write_csv(const Report& r, const std::filesystem::path& file);
void write_markdown(const Report& r, const std::filesystem::path& file);
// scaling-<pattern>.dat (one line per client count, columns per series)
// and plot-vars.gp, for docs/perf/plots.gp.
void write_plot_data(const Report& r, const std::filesystem::path& dir);

} // namespace lonc::bench
