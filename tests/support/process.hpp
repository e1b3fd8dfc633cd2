// Child processes for black-box tests: spawn a real binary, signal it,
// wait for it, read its stdout line by line. A Process that is destroyed
// while its child still runs kills (SIGKILL) and reaps it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace lonc::test {

using namespace std::chrono_literals;

struct SpawnOptions {
    std::vector<std::string> env; // extra "NAME=value" entries
    bool capture_stdout = false;  // else stdout goes to stderr_file / inherits
    std::string stderr_file;      // append stdout/stderr here; empty: inherit
    bool new_session = true;      // setsid(): signals to the test don't hit it
};

struct ExitStatus {
    int code = -1;  // exit code, or -1 when killed by a signal
    int signal = 0; // terminating signal, or 0
    [[nodiscard]] bool exited(int c) const { return signal == 0 && code == c; }
    [[nodiscard]] std::string to_string() const;
};

class Process {
public:
    Process() = default;
    static Process spawn(const std::vector<std::string>& argv, const SpawnOptions& opts = {});
    ~Process();
    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool running();
    void signal(int sig) const;
    // Waits for the child to exit; nullopt on timeout (child left running).
    std::optional<ExitStatus> wait(std::chrono::milliseconds timeout);
    // SIGKILL (if running) and reap.
    void kill();
    // Next line of captured stdout, without '\n'; nullopt on timeout/EOF.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);
    // Reads captured stdout lines until one contains needle.
    bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout);

private:
    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::string out_buf_;
    std::optional<ExitStatus> status_;
};

// Polls pred every interval until it is true or timeout passes.
template <typename Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 10ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(interval);
    }
}

} // namespace lonc::test
