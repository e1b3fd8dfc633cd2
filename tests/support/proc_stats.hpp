// What /proc says about running processes: CPU time, context switches,
// memory, descriptors, limits, credentials, children. The one /proc reader
// of the tests: the integration tests bound lonc's resources with it, and
// lonc-bench charges CPU to lonc (the supervisor and every child), the bare
// relay and lond-sim without touching them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace lonc::test {

// Resident set size in KiB (VmRSS), 0 when the process is gone.
[[nodiscard]] long rss_kib(pid_t pid);
// Open descriptors (entries of /proc/<pid>/fd), -1 when gone.
[[nodiscard]] int fd_count(pid_t pid);
// User + system CPU time in seconds, -1 when gone.
[[nodiscard]] double cpu_seconds(pid_t pid);
// A "Name:\tvalue" line of /proc/<pid>/status, without the name.
[[nodiscard]] std::optional<std::string> status_field(pid_t pid, const std::string& name);
// The numbers of a status field ("Uid:" gives real, effective, saved, fs).
[[nodiscard]] std::vector<long> status_numbers(pid_t pid, const std::string& name);
// The soft and hard RLIMIT_NOFILE of a process (from /proc/<pid>/limits).
[[nodiscard]] std::pair<long, long> nofile_limits(pid_t pid);

struct ProcSample {
    std::uint64_t cpu_ticks = 0;      // utime + stime (clock ticks)
    std::uint64_t voluntary_cs = 0;   // blocked and woken again
    std::uint64_t involuntary_cs = 0; // preempted
    unsigned processes = 0;           // how many were read
};

// Sums /proc/<pid>/stat utime+stime and /proc/<pid>/status context switches
// over pids (those that are gone are skipped).
[[nodiscard]] ProcSample sample(const std::vector<pid_t>& pids);

// Microseconds of one clock tick (10000 with USER_HZ 100).
[[nodiscard]] double tick_us();

// The live children of parent (ppid == parent), found by a /proc scan.
[[nodiscard]] std::vector<pid_t> children_of(pid_t parent);

// parent and its children.
[[nodiscard]] std::vector<pid_t> tree(pid_t parent);

struct Memory {
    std::uint64_t pss_kib = 0;
    std::uint64_t private_dirty_kib = 0;
    std::uint64_t rss_kib = 0;
};

// /proc/<pid>/smaps_rollup; nullopt when unreadable.
[[nodiscard]] std::optional<Memory> memory(pid_t pid);

// Nanoseconds a task has run (/proc/<pid>/schedstat; the main thread of a
// process), 0 if unreadable. Precise where clock ticks are too coarse.
[[nodiscard]] std::uint64_t run_ns(pid_t pid);

// Minor page faults of a process so far (0 if unreadable).
[[nodiscard]] std::uint64_t minor_faults(pid_t pid);

// CPU time of this process (user + sys) in microseconds.
[[nodiscard]] std::uint64_t self_cpu_us();

} // namespace lonc::test
