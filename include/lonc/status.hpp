// The status files written on USR1: loncstatus.txt in the original's
// format and loncstatus.json with the same facts as fields.
#pragma once

#include "lonc/ipc.hpp"

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace lonc {

struct PeerStatus {
    std::string id;
    pid_t pid = 0;     // 0: no child
    std::string state; // running, unreachable, skipped, restarting, probing
    bool answered = false;
    bool link_up = false;       // as the supervisor last heard it
    std::uint64_t restarts = 0; // children the supervisor started after the first
    ipc::Fields fields;         // the child's report (see status_fields in child.cpp)
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
[[nodiscard]] std::string format_status_json(const StatusReport& report);

// Writes via a temporary file and rename(2): readers see the old or the
// new file, never half of one. Creates the directory if missing.
bool write_file_atomic(const std::filesystem::path& path, std::string_view content,
                       std::string& error);

} // namespace lonc
