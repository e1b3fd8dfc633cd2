#include "process.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdexcept>
#include <string_view>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

extern char** environ;

namespace lonc::test {

std::string ExitStatus::to_string() const {
    if (signal != 0) {
        return std::string("killed by signal ") + std::to_string(signal) + " (" +
               ::strsignal(signal) + ")";
    }
    return "exit " + std::to_string(code);
}

namespace {

ExitStatus decode(int status) {
    ExitStatus s;
    if (WIFEXITED(status)) {
        s.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        s.signal = WTERMSIG(status);
    }
    return s;
}

} // namespace

Process Process::spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
    if (argv.empty()) {
        throw std::invalid_argument("spawn: empty argv");
    }
    int out[2] = {-1, -1};
    if (opts.capture_stdout && ::pipe2(out, O_CLOEXEC) != 0) {
        throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    int err_fd = -1;
    if (!opts.stderr_file.empty()) {
        err_fd = ::open(opts.stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (err_fd < 0) {
            throw std::system_error(errno, std::generic_category(), "open " + opts.stderr_file);
        }
    }
    // Everything the child needs is prepared before fork (no allocation after).
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    // The inherited environment, minus what opts.env sets: getenv() finds
    // the first of duplicate names, so an inherited ASAN_OPTIONS would hide
    // the one given here (and with it the sanitizer's log_path).
    auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
    std::vector<std::string> env_store;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view entry(*e);
        bool overridden = false;
        for (const auto& mine : opts.env) {
            overridden = overridden || name_of(mine) == name_of(entry);
        }
        if (!overridden) {
            env_store.emplace_back(entry);
        }
    }
    env_store.insert(env_store.end(), opts.env.begin(), opts.env.end());
    std::vector<char*> envp;
    for (auto& e : env_store) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::system_error(errno, std::generic_category(), "fork");
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig = 1; sig < NSIG; ++sig) {
            ::signal(sig, SIG_DFL);
        }
        if (opts.new_session) {
            ::setsid();
        }
        const int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(devnull, 0);
        if (err_fd >= 0) {
            ::dup2(err_fd, 1);
            ::dup2(err_fd, 2);
        }
        if (opts.capture_stdout) {
            ::dup2(out[1], 1);
        }
        ::execve(args[0], args.data(), envp.data());
        const char msg[] = "spawn: execve failed\n";
        (void)!::write(2, msg, sizeof msg - 1);
        ::_exit(127);
    }
    if (err_fd >= 0) {
        ::close(err_fd);
    }
    Process p;
    p.pid_ = pid;
    if (opts.capture_stdout) {
        ::close(out[1]);
        p.out_fd_ = out[0];
    }
    return p;
}

Process::~Process() {
    kill();
    if (out_fd_ >= 0) {
        ::close(out_fd_);
    }
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), out_fd_(std::exchange(other.out_fd_, -1)),
      out_buf_(std::move(other.out_buf_)), status_(other.status_) {}

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        kill();
        if (out_fd_ >= 0) {
            ::close(out_fd_);
        }
        pid_ = std::exchange(other.pid_, -1);
        out_fd_ = std::exchange(other.out_fd_, -1);
        out_buf_ = std::move(other.out_buf_);
        status_ = other.status_;
    }
    return *this;
}

bool Process::running() {
    if (pid_ <= 0 || status_) {
        return false;
    }
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        status_ = decode(st);
        return false;
    }
    return r == 0;
}

void Process::signal(int sig) const {
    if (pid_ > 0) {
        ::kill(pid_, sig);
    }
}

std::optional<ExitStatus> Process::wait(std::chrono::milliseconds timeout) {
    if (status_) {
        return status_;
    }
    if (pid_ <= 0) {
        return std::nullopt;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = decode(st);
            return status_;
        }
        if (r < 0 && errno != EINTR) {
            return std::nullopt;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(2ms);
    }
}

void Process::kill() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
        status_ = decode(st);
    }
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds timeout) {
    if (out_fd_ < 0) {
        return std::nullopt;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (const auto nl = out_buf_.find('\n'); nl != std::string::npos) {
            auto line = out_buf_.substr(0, nl);
            out_buf_.erase(0, nl + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        pollfd pfd{out_fd_, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        char buf[4096];
        const auto n = ::read(out_fd_, buf, sizeof buf);
        if (n <= 0) {
            return std::nullopt;
        }
        out_buf_.append(buf, static_cast<std::size_t>(n));
    }
}

bool Process::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        const auto line = read_line(left);
        if (!line) {
            return false;
        }
        if (line->find(needle) != std::string::npos) {
            return true;
        }
    }
}

} // namespace lonc::test
