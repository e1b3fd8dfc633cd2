// Logging in the original's formats.
//
// lonc.log:        <localtime> (<pid>) [<role>] [<status>]: <message>
// lonnet.perm.log: <epoch>:<message>:<localtime>
//
// role is the peer's host id in a child and PARENT in the supervisor;
// status is "<localtime>: <what the process is doing>". Warnings and errors
// get the original's level words (WARNING:, CRITICAL:) in front of the
// message; loncron counts them. Messages that need INFO: say so themselves.
// An error logged with error_not_critical() (a rejected reload) says
// "ERROR: " instead of "CRITICAL: ". The word comes from the severity,
// never from the message's text.
//
// Everything is synchronous and single-threaded (spdlog with null mutexes,
// no async logger, no flush thread): a process may fork at any time. Each
// process calls init() for itself, a forked child right after the fork.
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace lonc::log {

struct Setup {
    std::filesystem::path file;  // lonc.log; empty: no file
    std::string role = "PARENT"; // host id, or PARENT
    spdlog::level::level_enum level = spdlog::level::info;
    bool to_stderr = false; // also to stderr, no timestamp (journald)
};

// (Re)builds the sinks of every module logger.
void init(const Setup& setup);

// How bad a line is, as lonc.log and the journal see it. spdlog's err is
// critical (the original called every error CRITICAL, and loncron counts
// those), except inside error_not_critical(); trace is debug.
enum class Severity : std::uint8_t { debug, info, warning, error, critical };
// The original's level word: "CRITICAL: ", "ERROR: ", "WARNING: ", or none.
[[nodiscard]] std::string_view level_word(Severity severity);

// True when stderr is the journal: JOURNAL_STREAM ("<dev>:<inode>", set by
// systemd) names the file descriptor 2 refers to. Then the stderr lines of
// init(to_stderr) start with journal_prefix(severity), so that journalctl
// -p filters them; otherwise stderr output carries no prefix. lonc.log
// never does (loncron reads it).
[[nodiscard]] bool stderr_is_journal();
// The sd-daemon(3) prefix of a line: "<2>" (crit), "<3>" (err), "<4>"
// warning, "<6>" info, "<7>" debug.
[[nodiscard]] std::string_view journal_prefix(Severity severity);

namespace detail {
// While one lives, err lines are Severity::error (see error_not_critical).
class NotCritical {
public:
    NotCritical() noexcept;
    ~NotCritical();
    NotCritical(const NotCritical&) = delete;
    NotCritical& operator=(const NotCritical&) = delete;
};
} // namespace detail

// An error that is not CRITICAL: "ERROR: <message>", priority err. For a
// refused operator request (a rejected reload): loncron counts CRITICAL
// lines as trouble with links.
template <typename... Args>
void error_not_critical(spdlog::logger& logger, spdlog::format_string_t<Args...> fmt,
                        Args&&... args) {
    const detail::NotCritical scope;
    logger.error(fmt, std::forward<Args>(args)...);
}

// Changes the level of every module logger (a reload's --log-level).
void set_level(spdlog::level::level_enum level);

// The logger of one module ("link", "client", "spool", ...); all share the
// process's sinks. Valid for the life of the process.
[[nodiscard]] spdlog::logger& get(std::string_view module);

// What this process is doing now, for log lines and loncstatus.txt.
void set_status(std::string_view what);
[[nodiscard]] const std::string& status();
// "<localtime>: <message>" of the last line logged.
[[nodiscard]] const std::string& last_log();
// Lines that could not be written (disk full, directory gone) so far.
[[nodiscard]] std::uint64_t lost_lines();

// Appends "<epoch>:<message>:<localtime>" to lonnet.perm.log (opened per
// line, as lonnet does: the file is shared). False (errno set) if it could
// not; a line a full disk cut short is blanked, so that no fragment of it
// reads as a record.
bool perm(const std::filesystem::path& file, std::string_view message);

// Text from the outside world made safe for one log line: control bytes
// and non-ASCII as \xHH, cut to max bytes with a note of the full size.
[[nodiscard]] std::string printable(std::string_view text, std::size_t max = 200);

// A request as it may appear in lonc.log or status text: encrypt: payloads
// never do ("encrypt:<N bytes>").
[[nodiscard]] std::string redact(std::string_view request, std::size_t max = 200);

} // namespace lonc::log
