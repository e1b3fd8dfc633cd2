#include "lonc/runtime/daemon.hpp"

#include "lonc/core/config.hpp"
#include "lonc/runtime/log.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

namespace lonc {
namespace {

// The start failed: an error for journalctl -p when stderr is the journal.
const char* journal_err() {
    return log::stderr_is_journal() ? "<3>" : "";
}

std::optional<pid_t> read_pid(int fd) {
    char buf[32] = {};
    const auto n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        return std::nullopt;
    }
    char* end = nullptr;
    const long v = std::strtol(buf, &end, 10);
    if (end == buf || v <= 0 || v > 4194304) {
        return std::nullopt;
    }
    return static_cast<pid_t>(v);
}

} // namespace

bool is_lonc_process(pid_t pid) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
        return false;
    }
    const auto cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    if (!cmdline) {
        return false;
    }
    // argv is NUL-separated: lonc itself, or an interpreter running .../lonc.
    std::string_view rest = *cmdline;
    for (int i = 0; i < 3 && !rest.empty(); ++i) {
        const auto nul = rest.find('\0');
        auto arg = rest.substr(0, nul);
        if (const auto slash = arg.rfind('/'); slash != std::string_view::npos) {
            arg.remove_prefix(slash + 1);
        }
        if (arg == "lonc") {
            return true;
        }
        if (nul == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(nul + 1);
    }
    return false;
}

std::optional<PidFile> PidFile::acquire(const std::filesystem::path& path, PidFileError& error) {
    auto running = [&](const std::string& text) {
        error = {PidFileError::Kind::running, "lonc is already running" + text};
        return std::nullopt;
    };
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd && errno == EACCES) {
        // Left by another user (an old lonc run as root, say). If it names a
        // live lonc, that one is running; else replace the file.
        const UniqueFd ro(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (ro) {
            if (const auto pid = read_pid(ro.get()); pid && is_lonc_process(*pid)) {
                return running(" (pid " + std::to_string(*pid) + " in " + path.string() + ")");
            }
        }
        if (::unlink(path.c_str()) == 0) {
            fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        } else {
            errno = EACCES;
        }
    }
    if (!fd) {
        error = {PidFileError::Kind::cannot_open,
                 "cannot open " + path.string() + ": " + std::strerror(errno)};
        return std::nullopt;
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        const auto pid = read_pid(fd.get());
        return running((pid ? " (pid " + std::to_string(*pid) + ")" : "") + ": " + path.string() +
                       " is locked");
    }
    if (const auto pid = read_pid(fd.get()); pid && *pid != ::getpid() && is_lonc_process(*pid)) {
        return running(" (pid " + std::to_string(*pid) + " in " + path.string() + ")");
    }
    return PidFile(std::move(fd), path);
}

bool PidFile::write(pid_t pid) {
    const auto text = std::to_string(pid) + "\n";
    return ::ftruncate(fd_.get(), 0) == 0 &&
           ::pwrite(fd_.get(), text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
}

void PidFile::remove() {
    if (fd_) {
        ::unlink(path_.c_str());
        fd_.reset();
    }
}

void Launcher::report(int code, std::string_view message) {
    if (fd_) {
        std::string msg(1, static_cast<char>(static_cast<unsigned char>(code)));
        msg += message;
        (void)!::write(fd_.get(), msg.data(), msg.size());
        fd_.reset();
    }
}

Launcher daemonize() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        std::perror("lonc: pipe");
        std::exit(1);
    }
    UniqueFd read_end(p[0]);
    UniqueFd write_end(p[1]);
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("lonc: fork");
        std::exit(1);
    }
    if (pid > 0) {
        write_end.reset(); // EOF once the daemon reports or dies
        std::string got;
        char buf[4096];
        for (;;) {
            const auto n = ::read(read_end.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            got.append(buf, static_cast<std::size_t>(n));
        }
        if (got.empty()) {
            (void)std::fprintf(stderr, "%slonc: the daemon exited during start; see the log\n",
                               journal_err());
            ::_exit(1);
        }
        if (got.size() > 1) {
            (void)std::fprintf(stderr, "%slonc: %s\n", journal_err(), got.c_str() + 1);
        }
        ::_exit(static_cast<unsigned char>(got[0]));
    }
    read_end.reset();
    ::setsid();
    if (::chdir("/") != 0) {
        // not fatal: paths lonc uses are absolute
    }
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (null) {
        ::dup2(null.get(), 0);
        ::dup2(null.get(), 1);
        ::dup2(null.get(), 2);
        if (null.get() <= 2) {
            (void)null.release(); // it is stdin, stdout or stderr now
        }
    }
    return Launcher(std::move(write_end));
}

} // namespace lonc
