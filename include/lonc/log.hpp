// Logging in the original's formats.
//
// lonc.log:        <localtime> (<pid>) [<role>] [<status>]: <message>
// lonnet.perm.log: <epoch>:<message>:<localtime>
//
// role is the peer's host id in a child and PARENT in the supervisor;
// status is "<localtime>: <what the process is doing>". Warnings and errors
// get the original's level words (WARNING:, CRITICAL:) in front of the
// message; loncron counts them. Messages that need INFO: say so themselves;
// an error message beginning "ERROR: " (a rejected reload) is not CRITICAL.
//
// Everything is synchronous and single-threaded (spdlog with null mutexes,
// no async logger, no flush thread): a process may fork at any time. Each
// process calls init() for itself, a forked child right after the fork.
#pragma once

#include <spdlog/logger.h>

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

// True when stderr is the journal: JOURNAL_STREAM ("<dev>:<inode>", set by
// systemd) names the file descriptor 2 refers to. Then the stderr lines of
// init(to_stderr) start with journal_prefix(level), so that journalctl -p
// filters them; otherwise stderr output carries no prefix. lonc.log never
// does (loncron reads it).
[[nodiscard]] bool stderr_is_journal();
// The sd-daemon(3) prefix of a line: the priority its level word says.
// "<2>" (crit) for what lonc.log calls CRITICAL:, "<3>" (err) for an error
// that says "ERROR: " itself, "<4>" warning, "<6>" info, "<7>" debug/trace.
[[nodiscard]] std::string_view journal_prefix(spdlog::level::level_enum level,
                                              std::string_view message);

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
