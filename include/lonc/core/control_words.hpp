// The words lonc and lonctl say to each other, defined once: the control
// socket's commands and verdicts (control.hpp draws the exchange), the
// states a peer's slot is in (the status files, lonctl status, the
// metrics), loncstatus.json's keys, and the suffixes of delayed/ files set aside or delivered.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace lonc {

namespace words {

// Commands, one line from lonctl.
inline constexpr std::string_view status = "status";
inline constexpr std::string_view reload = "reload";
inline constexpr std::string_view upgrade = "upgrade";
inline constexpr std::string_view reconnect = "reconnect"; // "reconnect HOST"

// Verdicts: the first line of the answer to reload and upgrade.
inline constexpr std::string_view applied = "applied";   // reload taken
inline constexpr std::string_view rejected = "rejected"; // nothing changed; reasons follow
inline constexpr std::string_view upgraded = "upgraded"; // every peer handed over
inline constexpr std::string_view failed = "failed";     // some peers kept their old child
// The answer to reconnect that went well.
inline constexpr std::string_view ok = "ok";

// Errors, answered instead of a verdict.
inline constexpr std::string_view shutting_down = "error:shutting_down";
inline constexpr std::string_view unknown_command = "error:unknown_command";
inline constexpr std::string_view no_such_host = "error:no_such_host";
inline constexpr std::string_view child_not_answering = "error:child_not_answering";

} // namespace words

// One command line, as lonctl writes it and lonc reads it.
struct Command {
    enum class Verb { status, reload, upgrade, reconnect };
    Verb verb;
    std::string host; // reconnect's
};

[[nodiscard]] inline std::string command_line(const Command& c) {
    switch (c.verb) {
    case Command::Verb::status:
        return std::string(words::status);
    case Command::Verb::reload:
        return std::string(words::reload);
    case Command::Verb::upgrade:
        return std::string(words::upgrade);
    case Command::Verb::reconnect:
        return std::string(words::reconnect) + " " + c.host;
    }
    return {};
}

// nullopt: not a command (lonc answers unknown_command).
[[nodiscard]] inline std::optional<Command> parse_command(std::string_view line) {
    if (line == words::status) {
        return Command{Command::Verb::status, {}};
    }
    if (line == words::reload) {
        return Command{Command::Verb::reload, {}};
    }
    if (line == words::upgrade) {
        return Command{Command::Verb::upgrade, {}};
    }
    const auto sp = line.find(' ');
    if (sp != std::string_view::npos && sp + 1 < line.size() &&
        line.substr(0, sp) == words::reconnect) {
        return Command{Command::Verb::reconnect, std::string(line.substr(sp + 1))};
    }
    return std::nullopt;
}

// A peer's slot in the supervisor. draining: a reload retired its child
// (peer removed, or its address changed: then a successor comes next).
enum class SlotState { probing, unreachable, running, restarting, skipped, draining };

inline constexpr std::array<SlotState, 6> all_slot_states = {
    SlotState::probing,    SlotState::unreachable, SlotState::running,
    SlotState::restarting, SlotState::skipped,     SlotState::draining};

[[nodiscard]] constexpr std::string_view to_string(SlotState s) noexcept {
    switch (s) {
    case SlotState::probing:
        return "probing";
    case SlotState::unreachable:
        return "unreachable";
    case SlotState::running:
        return "running";
    case SlotState::restarting:
        return "restarting";
    case SlotState::skipped:
        return "skipped";
    case SlotState::draining:
        return "draining";
    }
    return "?";
}

[[nodiscard]] constexpr std::optional<SlotState> parse_slot_state(std::string_view s) noexcept {
    for (const auto state : all_slot_states) {
        if (to_string(state) == s) {
            return state;
        }
    }
    return std::nullopt;
}

// loncstatus.json's keys (lonc writes them, lonctl status reads them; a
// child report's own fields are named in child_report.hpp's table).
namespace status_key {
inline constexpr const char* schema = "schema";
inline constexpr const char* generation = "generation";
inline constexpr const char* time = "time";
inline constexpr const char* parent = "parent";
inline constexpr const char* pid = "pid";
inline constexpr const char* status = "status";
inline constexpr const char* last_log = "last_log";
inline constexpr const char* peers = "peers";
inline constexpr const char* id = "id";
inline constexpr const char* state = "state";
inline constexpr const char* answered = "answered";
// Instead of the report's spool_oldest: the age of that file at the time
// of the round, in seconds (null: none waits).
inline constexpr const char* spool_oldest_age = "spool_oldest_age_seconds";
inline constexpr const char* reload = "reload";
inline constexpr const char* success = "success";
inline constexpr const char* last_success = "last_success";
inline constexpr const char* result = "result";
inline constexpr const char* undeliverable = "undeliverable";
} // namespace status_key

// delayed/<name> set aside after too many deaths, and the marker of a
// delivery whose S line is still to be written.
inline constexpr std::string_view bad_suffix = ".bad";
inline constexpr std::string_view sent_suffix = ".sent";
// An extended attribute of a delayed/ file: how often lonc put it back
// after it was set aside (the bound holds across restarts). The
// operator's lonctl spool retry removes it: the count starts again.
inline constexpr const char* bad_retries_attr = "user.lonc.retries";

} // namespace lonc
