// What /proc says about a running process: memory, descriptors, CPU time,
// credentials. For tests that bound a daemon's resources.
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>
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

} // namespace lonc::test
