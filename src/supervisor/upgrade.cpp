#include "lonc/supervisor/upgrade.hpp"

#include "lonc/core/fd.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace lonc {

namespace {

template <typename T> bool number(std::string_view s, T& out) {
    const auto* end = s.data() + s.size();
    const auto r = std::from_chars(s.data(), end, out);
    return !s.empty() && r.ec == std::errc() && r.ptr == end;
}

bool valid_id(std::string_view id) {
    return !id.empty() && std::all_of(id.begin(), id.end(),
                                      [](char c) { return c > ' ' && c != '/' && c != 0x7f; });
}

} // namespace

std::string Handover::encode() const {
    std::string s = "v1 pidfile=" + std::to_string(pid_file_fd) +
                    " waiter=" + std::to_string(waiter_fd) + " from=" + from_version +
                    " started=" + std::to_string(started_ms);
    for (const auto& c : children) {
        s += " child=" + c.id + "/" + std::to_string(c.pid) + "/" + std::to_string(c.fd) + "/" +
             (c.link_up ? "1" : "0");
    }
    return s;
}

std::optional<Handover> Handover::decode(std::string_view text, std::string& error) {
    Handover h;
    bool version = false;
    while (!text.empty()) {
        const auto sp = text.find(' ');
        const auto word = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
        if (word.empty()) {
            continue;
        }
        if (!version) {
            if (word != "v1") {
                error = "unknown format " + std::string(word.substr(0, 20));
                return std::nullopt;
            }
            version = true;
            continue;
        }
        const auto eq = word.find('=');
        const auto key = word.substr(0, eq);
        const auto value = eq == std::string_view::npos ? std::string_view{} : word.substr(eq + 1);
        bool ok = eq != std::string_view::npos;
        if (key == "pidfile") {
            ok = ok && number(value, h.pid_file_fd) && h.pid_file_fd > 2;
        } else if (key == "waiter") {
            ok = ok && number(value, h.waiter_fd) && (h.waiter_fd == -1 || h.waiter_fd > 2);
        } else if (key == "from") {
            h.from_version = std::string(value);
        } else if (key == "started") {
            ok = ok && number(value, h.started_ms);
        } else if (key == "child") {
            // ID/PID/FD/UP, split from the right: the id is checked apart.
            HandoverChild c;
            std::string_view rest = value;
            std::string_view parts[3];
            for (int i = 2; i >= 0 && ok; --i) {
                const auto slash = rest.rfind('/');
                ok = slash != std::string_view::npos;
                if (ok) {
                    parts[i] = rest.substr(slash + 1);
                    rest = rest.substr(0, slash);
                }
            }
            ok = ok && valid_id(rest) && number(parts[0], c.pid) && c.pid > 0 &&
                 number(parts[1], c.fd) && c.fd > 2 && (parts[2] == "0" || parts[2] == "1");
            if (ok) {
                c.id = std::string(rest);
                c.link_up = parts[2] == "1";
                h.children.push_back(std::move(c));
            }
        } else {
            ok = false;
        }
        if (!ok) {
            error = "bad field " + std::string(word.substr(0, 60));
            return std::nullopt;
        }
    }
    if (!version || h.pid_file_fd < 0) {
        error = "no pid file descriptor";
        return std::nullopt;
    }
    auto fds = h.fds();
    if (std::adjacent_find(fds.begin(), fds.end()) != fds.end()) {
        error = "a descriptor is named twice";
        return std::nullopt;
    }
    return h;
}

std::vector<int> Handover::fds() const {
    std::vector<int> out{pid_file_fd};
    if (waiter_fd >= 0) {
        out.push_back(waiter_fd);
    }
    for (const auto& c : children) {
        out.push_back(c.fd);
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool check_binary(const std::string& exe, const std::vector<std::string>& args, double timeout_s,
                  std::string& output) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        output = std::string("pipe: ") + std::strerror(errno);
        return false;
    }
    UniqueFd read_end(p[0]);
    UniqueFd write_end(p[1]);
    std::vector<std::string> argv{exe, "-t"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (auto& a : argv) {
        cargv.push_back(a.data());
    }
    cargv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        output = std::string("fork: ") + std::strerror(errno);
        return false;
    }
    if (pid == 0) {
        ::dup2(write_end.get(), 1);
        ::dup2(write_end.get(), 2);
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execv(exe.c_str(), cargv.data());
        const std::string msg = "cannot execute " + exe + ": " + std::strerror(errno) + "\n";
        (void)!::write(2, msg.data(), msg.size());
        ::_exit(127);
    }
    write_end.reset();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    bool timed_out = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        pollfd pf{read_end.get(), POLLIN, 0};
        const int r = ::poll(&pf, 1, static_cast<int>(left));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[4096];
        const auto n = ::read(read_end.get(), buf, sizeof buf);
        if (n <= 0) {
            break; // EOF: it has exited (or closed its output)
        }
        if (output.size() < 16384) {
            output.append(buf, static_cast<std::size_t>(n));
        }
    }
    if (timed_out) {
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        output += (output.empty() || output.back() == '\n' ? "" : "\n") + exe +
                  " -t did not finish within " + std::to_string(timeout_s) + " s";
        return false;
    }
    if (!WIFEXITED(status)) {
        output += (output.empty() || output.back() == '\n' ? "" : "\n") + exe +
                  " -t was killed by signal " + std::to_string(WTERMSIG(status));
        return false;
    }
    if (WEXITSTATUS(status) != 0) {
        output += (output.empty() || output.back() == '\n' ? "" : "\n") + exe + " -t exited " +
                  std::to_string(WEXITSTATUS(status));
        return false;
    }
    return true;
}

std::string own_executable() {
    char buf[4096];
    const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        return {};
    }
    return {buf, static_cast<std::size_t>(n)};
}

} // namespace lonc
