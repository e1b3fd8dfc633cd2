// The status files written on USR1: loncstatus.txt in the original's
// format and loncstatus.json with the same facts as fields.
#pragma once

#include "lonc/core/child_report.hpp"

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace lonc {

struct PeerStatus {
    std::string id;
    pid_t pid = 0;              // 0: no child
    std::string state;          // running, unreachable, skipped, restarting, probing
    bool answered = false;      // report is this generation's; else it is empty
    bool link_up = false;       // as the supervisor last heard it
    std::uint64_t restarts = 0; // children the supervisor started after the first
    ChildReport report;
};

// The last reload attempt; before any, the start counts as one that worked.
struct ReloadStatus {
    std::time_t time = 0;         // of the last attempt
    std::time_t last_success = 0; // of the last one applied (or the start)
    bool success = true;
    std::string result; // "applied: ...", "rejected: <file:line: why>", "loaded at start"
    // Peers a reload removed whose delayed files are still in delayed/:
    // they can no longer be delivered. Host id -> file names.
    std::map<std::string, std::vector<std::string>> undeliverable;
};

struct StatusReport {
    std::uint64_t generation = 0;
    std::time_t time = 0;
    pid_t parent_pid = 0;
    std::string parent_status;   // "<localtime>: <what>"
    std::string parent_last_log; // "<localtime>: <message>"
    std::vector<PeerStatus> peers;
    ReloadStatus reload;
};

// LONC status <localtime> - parent <pid>, a blank line, the parent's line,
// then <pid>\t<hostid>\t<status>\t<lastlog> for every live child, then
// -\t<hostid>\t<localtime>: removed ... cannot be delivered\t<files> for
// every removed peer that left delayed files.
[[nodiscard]] std::string format_status_txt(const StatusReport& report);

// loncstatus.json, described field by field in docs/status.md. Its "schema"
// says which version of that description it follows: a field that changes
// meaning or goes away raises it; a new field does not.
inline constexpr int status_json_schema = 1;
[[nodiscard]] std::string format_status_json(const StatusReport& report);

// Seconds the peer's oldest waiting delayed message had waited at now;
// none when nothing waits or the child did not answer.
[[nodiscard]] std::optional<std::int64_t> spool_oldest_age(const PeerStatus& peer, std::time_t now);

// The supervisor's own status line: "Sleeping: N peers, C children, U
// links up, X unreachable, S skipped".
[[nodiscard]] std::string parent_summary(const std::vector<PeerStatus>& peers);

// loncstatus.json (json: format_status_json(report)), then loncstatus.txt,
// each atomically: a reader polling the JSON's generation then finds the
// matching text file in place. False and error if one cannot be written.
bool write_status_files(const std::filesystem::path& dir, const StatusReport& report,
                        const std::string& json, std::string& error);

// Writes via a temporary file and rename(2): readers see the old or the
// new file, never half of one. Creates the directory if missing.
bool write_file_atomic(const std::filesystem::path& path, std::string_view content,
                       std::string& error);

} // namespace lonc
