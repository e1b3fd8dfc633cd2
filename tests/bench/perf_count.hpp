// Counts kernel events (e.g. raw_syscalls:sys_enter) of running processes
// with `perf stat`, over exactly the window between enable() and
// disable(): perf starts with its counters off and is switched through
// its control FIFOs, each switch acknowledged, so a slow start of perf on
// a loaded machine costs nothing.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "process.hpp"

namespace lonc::bench {

class PerfCount {
public:
    // perf stat -e events -p pids; dir holds its FIFOs and output.
    // Throws std::runtime_error when perf is missing or does not start.
    PerfCount(const std::vector<std::string>& events, const std::vector<pid_t>& pids,
              const std::filesystem::path& dir);
    ~PerfCount();
    PerfCount(const PerfCount&) = delete;
    PerfCount& operator=(const PerfCount&) = delete;

    void enable();
    void disable();
    // Stops perf; event -> count.
    [[nodiscard]] std::map<std::string, double> finish();

    [[nodiscard]] static bool available();

private:
    void command(const char* what);

    std::filesystem::path dir_;
    test::Process perf_;
    int ctl_ = -1;
    int ack_ = -1;
};

} // namespace lonc::bench
