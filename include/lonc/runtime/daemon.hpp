// Becoming a daemon: the pid file that keeps a second lonc (ours or the
// original Perl one) from starting, and the fork that detaches from the
// terminal while the launching process waits for the daemon's verdict.
#pragma once

#include "lonc/core/fd.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace lonc {

// Why the pid file could not be taken.
struct PidFileError {
    enum class Kind : std::uint8_t {
        cannot_open, // the file cannot be opened or created (a configuration error)
        running,     // another lonc (ours or the Perl one) holds it
    };
    Kind kind = Kind::cannot_open;
    std::string text; // for stderr and the log: the path, and what is wrong
};

class PidFile {
public:
    // Opens and flocks path. Fails (running) when another process holds the
    // lock, or when the file names a live lonc or Perl lonc process other
    // than this one; cannot_open when the file cannot be opened. A stale
    // file is taken over.
    static std::optional<PidFile> acquire(const std::filesystem::path& path, PidFileError& error);

    // A pid file (and its lock) this process already holds: inherited
    // across the exec of lonctl upgrade.
    static PidFile adopt(UniqueFd fd, std::filesystem::path path) {
        return {std::move(fd), std::move(path)};
    }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    bool write(pid_t pid);
    // Removes the file (at exit).
    void remove();

private:
    PidFile(UniqueFd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
    UniqueFd fd_;
    std::filesystem::path path_;
};

// True when pid is a running lonc: its command line names a program or
// script called lonc (our binary, or perl .../lonc).
[[nodiscard]] bool is_lonc_process(pid_t pid);

// The write end the daemon reports through. The launching process prints
// the message (if any) to stderr and exits with the code (0: running), or
// with 1 if the daemon died without a word.
class Launcher {
public:
    Launcher() = default;
    explicit Launcher(UniqueFd fd) : fd_(std::move(fd)) {}
    // Tells the launching process to exit with code; later calls do nothing.
    void report(int code, std::string_view message = {});
    [[nodiscard]] bool pending() const noexcept { return static_cast<bool>(fd_); }

private:
    UniqueFd fd_;
};

// Forks; the launching process waits and exits inside. Returns in the
// daemon: new session, cwd /, stdin/stdout/stderr on /dev/null.
[[nodiscard]] Launcher daemonize();

} // namespace lonc
