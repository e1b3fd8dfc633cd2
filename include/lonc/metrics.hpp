// The Prometheus metrics file (--metrics-file, node_exporter's textfile
// collector style), rendered from a status generation. Per-peer counters
// come from that peer's child and start again from 0 when the child is
// restarted (Prometheus' rate() expects that); lonc_child_restarts_total is
// the supervisor's own count and survives them.
//
// Names follow Prometheus' conventions: counters end in _total, values are in
// base units (seconds, bytes), timestamps end in _timestamp_seconds or
// _time_seconds. The label peer="<host id>" names the peer in every series
// about one; process="supervisor"|"child" says which kind of lonc process a
// lonc_process_* series describes (a child's also has its peer label).
#pragma once

#include "lonc/status.hpp"

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace lonc {

// What a process knows of itself (a process that dropped root cannot read
// another one's /proc/<pid>/fd, so each reports its own).
struct ProcessFacts {
    double cpu_seconds = 0; // user + system
    std::uint64_t rss_bytes = 0;
    std::uint64_t open_fds = 0;
};
[[nodiscard]] ProcessFacts read_self_facts();
// As status fields: "cpu", "rss", "fds".
void add_facts(ipc::Fields& fields, const ProcessFacts& facts);

struct MetricsInput {
    const StatusReport* report = nullptr;
    ProcessFacts parent;
    std::time_t start_time = 0;
};

[[nodiscard]] std::string format_metrics(const MetricsInput& in);

} // namespace lonc
