// lonctl upgrade: what a supervisor hands to the binary it re-executes.
//
// The supervisor checks the new binary (`lonc -t` with its own command line,
// in a forked child), then execve()s the path it was started from, keeping
// its pid. Across the exec it keeps open, and names in the environment
// variable LONC_UPGRADE: the pid file (its lock stays held), the lonctl
// connection waiting for the outcome, and each running child's end of the
// socketpair. The new supervisor adopts those children and replaces them,
// peer by peer, with children of its own (see docs/design.md, "Upgrade").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace lonc {

inline constexpr const char* handover_env = "LONC_UPGRADE";

struct HandoverChild {
    std::string id; // host id
    pid_t pid = 0;
    int fd = -1; // the supervisor's end of its socketpair
    bool link_up = false;
};

struct Handover {
    int pid_file_fd = -1;
    int waiter_fd = -1;          // the waiting lonctl's connection (-1: none)
    std::string from_version;    // the version that executed us
    std::int64_t started_ms = 0; // wall clock, ms: when the upgrade was asked for
    std::vector<HandoverChild> children;

    // One line of space-separated fields: "v1 pidfile=3 waiter=9 from=0.1.0
    // started=1700000000000 child=ID/PID/FD/UP ...".
    [[nodiscard]] std::string encode() const;
    [[nodiscard]] static std::optional<Handover> decode(std::string_view text, std::string& error);
    // Every descriptor it names, ascending.
    [[nodiscard]] std::vector<int> fds() const;
};

// Runs `exe -t ARGS...` (args without argv[0]) as a child and waits for it
// (at most timeout_s). True if it exited 0; output gets what it printed.
bool check_binary(const std::string& exe, const std::vector<std::string>& args, double timeout_s,
                  std::string& output);

// The executable this process runs, as a path (readlink /proc/self/exe);
// empty if it cannot be read.
[[nodiscard]] std::string own_executable();

} // namespace lonc
