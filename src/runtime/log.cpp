#include "lonc/runtime/log.hpp"

#include "lonc/core/clock_text.hpp"
#include "lonc/core/fd.hpp"

#include <spdlog/details/null_mutex.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/base_sink.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

namespace lonc::log {
namespace {

struct State {
    bool not_critical = false; // inside error_not_critical()
    std::string role = "PARENT";
    std::string status;
    std::string last_log;
    std::uint64_t lost = 0;
    spdlog::level::level_enum level = spdlog::level::info;
    std::vector<spdlog::sink_ptr> sinks;
    std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
};

State& state() {
    static State s;
    return s;
}

std::string_view payload(const spdlog::details::log_msg& msg) {
    return {msg.payload.data(), msg.payload.size()};
}

Severity severity_of(spdlog::level::level_enum level) {
    switch (level) {
    case spdlog::level::critical:
        return Severity::critical;
    case spdlog::level::err:
        return state().not_critical ? Severity::error : Severity::critical;
    case spdlog::level::warn:
        return Severity::warning;
    case spdlog::level::info:
        return Severity::info;
    default:
        return Severity::debug;
    }
}

// lonc.log, reopened when loncron or logrotate renamed it away, written with
// one write(2) a line (O_APPEND), never throwing: a full disk costs lines,
// not service.
class ClassicFileSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
public:
    explicit ClassicFileSink(std::filesystem::path path) : path_(std::move(path)) { reopen(); }
    ~ClassicFileSink() override { let_go_if_inherited(); }
    ClassicFileSink(const ClassicFileSink&) = delete;
    ClassicFileSink& operator=(const ClassicFileSink&) = delete;

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        auto& st = state();
        const auto t = std::chrono::system_clock::to_time_t(msg.time);
        const auto when = perl_localtime(t);
        std::string line;
        line.reserve(64 + st.role.size() + st.status.size() + msg.payload.size());
        line += when;
        line += " (";
        line += std::to_string(::getpid());
        line += ") [";
        line += st.role;
        line += "] [";
        line += st.status;
        line += "]: ";
        const auto text =
            std::string(level_word(severity_of(msg.level))) + std::string(payload(msg));
        line += text;
        line += '\n';
        st.last_log = when + ": " + text;
        write_line(line);
    }
    void flush_() override {}

private:
    // A forked child inherits this sink but not the descriptor (it closes
    // the parent's descriptors): the number may be someone else's now, so
    // it is let go of, not closed.
    void let_go_if_inherited() noexcept {
        if (fd_ && owner_ != ::getpid()) {
            (void)fd_.release();
        }
    }

    void reopen() {
        UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
        if (!fd) {
            last_errno_ = errno; // what the lost-lines note will say
            return;
        }
        let_go_if_inherited();
        fd_ = std::move(fd);
        owner_ = ::getpid();
    }

    // Renamed away (rotation) or removed: start a new file at the path.
    void follow_rename() {
        struct stat by_path {};
        struct stat by_fd {};
        if (!fd_ || ::stat(path_.c_str(), &by_path) != 0 || ::fstat(fd_.get(), &by_fd) != 0 ||
            by_path.st_ino != by_fd.st_ino || by_path.st_dev != by_fd.st_dev) {
            reopen();
        }
    }

    void write_line(const std::string& line) {
        follow_rename();
        auto& st = state();
        if (!fd_) {
            ++st.lost;
            return;
        }
        if (lost_reported_ < st.lost) {
            const auto note = perl_localtime(std::time(nullptr)) + " (" +
                              std::to_string(::getpid()) + ") [" + st.role + "] [" + st.status +
                              "]: WARNING: " + std::to_string(st.lost - lost_reported_) +
                              " log lines lost (" + std::strerror(last_errno_) + ")\n";
            if (::write(fd_.get(), note.data(), note.size()) == static_cast<ssize_t>(note.size())) {
                lost_reported_ = st.lost;
            }
        }
        const auto n = ::write(fd_.get(), line.data(), line.size());
        if (n != static_cast<ssize_t>(line.size())) {
            last_errno_ = n < 0 ? errno : ENOSPC;
            ++st.lost;
        }
    }

    std::filesystem::path path_;
    UniqueFd fd_;
    pid_t owner_ = 0; // the process that opened fd_
    // Losses before this sink existed were reported by the one before it
    // (in a forked child: by the parent's).
    std::uint64_t lost_reported_ = state().lost;
    int last_errno_ = 0;
};

// Under --foreground: journald adds its own timestamp and pid. When stderr
// is the journal, every line starts with its sd-daemon(3) priority.
class StderrSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
public:
    explicit StderrSink(bool journal) : journal_(journal) {}

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        const auto severity = severity_of(msg.level);
        const auto prefix = journal_ ? journal_prefix(severity) : std::string_view();
        std::string line(prefix);
        line += "[" + state().role + "] ";
        line += level_word(severity);
        for (const char c : payload(msg)) {
            line += c;
            if (c == '\n') {
                line += prefix; // journald reads each line on its own
            }
        }
        line += '\n';
        (void)!::write(2, line.data(), line.size());
    }
    void flush_() override {}

private:
    bool journal_;
};

} // namespace

void init(const Setup& setup) {
    auto& st = state();
    st.role = setup.role;
    st.level = setup.level;
    st.sinks.clear();
    if (!setup.file.empty()) {
        st.sinks.push_back(std::make_shared<ClassicFileSink>(setup.file));
    }
    if (setup.to_stderr) {
        st.sinks.push_back(std::make_shared<StderrSink>(stderr_is_journal()));
    }
    for (auto& [name, logger] : st.loggers) {
        logger->sinks() = st.sinks;
        logger->set_level(st.level);
    }
}

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM"); // "<dev>:<inode>"
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    int used = 0;
    struct stat st {};
    return stream != nullptr && std::sscanf(stream, "%llu:%llu%n", &dev, &ino, &used) == 2 &&
           stream[used] == '\0' && ::fstat(2, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

std::string_view level_word(Severity severity) {
    switch (severity) {
    case Severity::critical:
        return "CRITICAL: ";
    case Severity::error:
        return "ERROR: ";
    case Severity::warning:
        return "WARNING: ";
    case Severity::info:
    case Severity::debug:
        break;
    }
    return "";
}

std::string_view journal_prefix(Severity severity) {
    switch (severity) {
    case Severity::critical:
        return "<2>";
    case Severity::error:
        return "<3>";
    case Severity::warning:
        return "<4>";
    case Severity::info:
        return "<6>";
    case Severity::debug:
        break;
    }
    return "<7>";
}

namespace detail {
NotCritical::NotCritical() noexcept {
    state().not_critical = true;
}
NotCritical::~NotCritical() {
    state().not_critical = false;
}
} // namespace detail

void set_level(spdlog::level::level_enum level) {
    auto& st = state();
    st.level = level;
    for (auto& [name, logger] : st.loggers) {
        logger->set_level(level);
    }
}

spdlog::logger& get(std::string_view module) {
    auto& st = state();
    auto it = st.loggers.find(module);
    if (it == st.loggers.end()) {
        auto logger =
            std::make_shared<spdlog::logger>(std::string(module), st.sinks.begin(), st.sinks.end());
        logger->set_level(st.level);
        // Errors inside sinks are handled there; never let spdlog print.
        logger->set_error_handler([](const std::string&) {});
        it = st.loggers.emplace(std::string(module), std::move(logger)).first;
    }
    return *it->second;
}

void set_status(std::string_view what) {
    auto& st = state();
    st.status = perl_localtime(std::time(nullptr));
    st.status += ": ";
    st.status += what;
}

const std::string& status() {
    return state().status;
}
const std::string& last_log() {
    return state().last_log;
}
std::uint64_t lost_lines() {
    return state().lost;
}

bool perm(const std::filesystem::path& file, std::string_view message) {
    const auto now = std::time(nullptr);
    std::string line = std::to_string(now);
    line += ':';
    line += message;
    line += ':';
    line += perl_localtime(now);
    line += '\n';
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) {
        return false;
    }
    const auto n = ::write(fd.get(), line.data(), line.size());
    const bool whole = n == static_cast<ssize_t>(line.size());
    const int err = n < 0 ? errno : ENOSPC; // a short write: the disk is full
    if (n > 0 && !whole) {
        // A full disk took the start of the line: a fragment such as
        // "1700000000:S:h1" would count as a record for loncron. Its bytes
        // are on disk already, so overwriting them needs no space: spaces
        // and a newline leave a blank line.
        const off_t end = ::lseek(fd.get(), 0, SEEK_CUR);
        const UniqueFd over(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
        if (end >= n && over) {
            std::string blank(static_cast<std::size_t>(n) - 1, ' ');
            blank += '\n';
            (void)!::pwrite(over.get(), blank.data(), blank.size(), end - n);
        }
    }
    const int closed = fd.close();
    if (whole && closed == 0) {
        return true;
    }
    errno = whole ? errno : err;
    return false;
}

std::string printable(std::string_view text, std::size_t max) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    const auto n = std::min(text.size(), max);
    out.reserve(n + 16);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else if (c == '\\') {
            out += "\\\\";
        } else {
            out += "\\x";
            out += hex[c >> 4U];
            out += hex[c & 15U];
        }
    }
    if (text.size() > max) {
        out += "...(" + std::to_string(text.size()) + " bytes)";
    }
    return out;
}

std::string redact(std::string_view request, std::size_t max) {
    constexpr std::string_view prefix = "encrypt:";
    if (request.substr(0, prefix.size()) == prefix) {
        return "encrypt:<" + std::to_string(request.size() - prefix.size()) + " bytes>";
    }
    return printable(request, max);
}

} // namespace lonc::log
