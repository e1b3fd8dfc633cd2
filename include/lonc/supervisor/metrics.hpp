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

#include "lonc/supervisor/status.hpp"

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace lonc {

struct MetricsInput {
    const StatusReport* report = nullptr;
    ProcessFacts parent; // read_self_facts() of the supervisor
    std::time_t start_time = 0;
};

[[nodiscard]] std::string format_metrics(const MetricsInput& in);

} // namespace lonc
