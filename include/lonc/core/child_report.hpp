// What a child tells the supervisor about its peer when asked (the ipc
// status_reply): one struct, one field table, one encode, one decode.
// loncstatus.txt, loncstatus.json, the metrics file and (through the JSON)
// lonctl all read these members; adding a fact is one member here and one
// row in child_report_fields.
//
// The payload is one "key=value\n" line a field, in table order; a value
// escapes newline as \n and backslash as \\ (anything else is taken as is).
// decode() wants every field of the table (but those an older child does
// not send, report_field_optional) and ignores keys it does not know, so an
// older reader takes a newer child's report.
#pragma once

#include "lonc/core/histogram.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace lonc {

// Whether at least one link to the peer's lond is up. Its text ("up",
// "down") is what the report, the ipc link_state message and
// loncstatus.json carry.
enum class LinkState : bool { down = false, up = true };
[[nodiscard]] std::string_view to_string(LinkState s) noexcept;
[[nodiscard]] std::optional<LinkState> parse_link_state(std::string_view text) noexcept;

// What a process knows of itself (a process that dropped root cannot read
// another one's /proc/<pid>/fd, so each reports its own).
struct ProcessFacts {
    double cpu_seconds = 0; // user + system
    std::uint64_t rss_bytes = 0;
    std::uint64_t open_fds = 0;
};
[[nodiscard]] ProcessFacts read_self_facts();

struct ChildReport {
    std::uint64_t generation = 0; // of the status request this answers
    LinkState link = LinkState::down;
    std::uint64_t links_up = 0;
    std::uint64_t links_total = 0;  // open or opening now
    std::uint64_t links_max = 0;    // --max-connections (at least --connections)
    std::uint64_t links_opened = 0; // opened on demand (counter)
    std::uint64_t links_closed = 0; // opened on demand, closed idle (counter)
    std::uint64_t handshakes = 0;   // handshakes completed, every link (counter)
    std::int64_t since = 0;         // Unix time the link state last changed
    std::string local_ports;        // of the links that are up, comma-separated
    std::string last_error;         // why a link that is down is down; "" if none known
    // "up" (a link is up), "down" (none), or "sick": links come up but die
    // before lond answers a request.
    std::string health = "down";
    std::uint64_t link_failures = 0; // attempts that failed: no handshake, or died unanswered
    std::uint64_t requests = 0;
    std::uint64_t errors = 0; // con_lost + rejected
    std::uint64_t con_lost = 0;
    std::uint64_t rejected = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t reconnects = 0;
    std::uint64_t queue = 0;
    std::uint64_t clients = 0;
    std::uint64_t spool_pending = 0;
    std::uint64_t spool_oldest = 0; // Unix time of the oldest waiting delayed file; 0: none
    std::uint64_t spool_delivered = 0;
    std::uint64_t spool_refused = 0;
    std::uint64_t spool_bad = 0;
    LatencyHistogram latency;
    std::string status;   // "<localtime>: <summary>", loncstatus.txt's third column
    std::string last_log; // "<localtime>: <message>", its fourth
    ProcessFacts process;

    [[nodiscard]] std::string encode() const;
    // nullopt, and why in error, for a payload that is not key=value lines,
    // lacks a field or holds a value its field cannot take.
    [[nodiscard]] static std::optional<ChildReport> decode(std::string_view payload,
                                                           std::string& error);
};

// One row of the table: the key in the payload, the name in
// loncstatus.json's peer objects ("" when the field is not there), and how
// to reach the value.
template <typename T> struct ReportField {
    std::string_view key;
    std::string_view json;
    T& (*get)(ChildReport&);
    const T& (*cget)(const ChildReport&);
};

#define LONC_REPORT_FIELD(type, key, json, expr)                                                   \
    ReportField<type> {                                                                            \
        key, json, [](ChildReport& r) -> type& { return expr; },                                   \
            [](const ChildReport& r) -> const type& { return expr; }                               \
    }

// The table, in payload order.
inline constexpr auto child_report_fields = std::tuple{
    LONC_REPORT_FIELD(std::uint64_t, "generation", "", r.generation),
    LONC_REPORT_FIELD(LinkState, "link", "link", r.link),
    LONC_REPORT_FIELD(std::uint64_t, "links_up", "links_up", r.links_up),
    LONC_REPORT_FIELD(std::uint64_t, "links_total", "links_total", r.links_total),
    LONC_REPORT_FIELD(std::uint64_t, "links_max", "links_max", r.links_max),
    LONC_REPORT_FIELD(std::uint64_t, "links_opened", "links_opened", r.links_opened),
    LONC_REPORT_FIELD(std::uint64_t, "links_closed", "links_closed", r.links_closed),
    LONC_REPORT_FIELD(std::uint64_t, "handshakes", "handshakes", r.handshakes),
    LONC_REPORT_FIELD(std::int64_t, "since", "link_since", r.since),
    LONC_REPORT_FIELD(std::string, "local_ports", "local_ports", r.local_ports),
    LONC_REPORT_FIELD(std::string, "last_error", "last_error", r.last_error),
    LONC_REPORT_FIELD(std::string, "health", "health", r.health),
    LONC_REPORT_FIELD(std::uint64_t, "link_failures", "link_failures", r.link_failures),
    LONC_REPORT_FIELD(std::uint64_t, "requests", "requests", r.requests),
    LONC_REPORT_FIELD(std::uint64_t, "errors", "errors", r.errors),
    LONC_REPORT_FIELD(std::uint64_t, "con_lost", "con_lost", r.con_lost),
    LONC_REPORT_FIELD(std::uint64_t, "rejected", "rejected", r.rejected),
    LONC_REPORT_FIELD(std::uint64_t, "timeouts", "timeouts", r.timeouts),
    LONC_REPORT_FIELD(std::uint64_t, "reconnects", "reconnects", r.reconnects),
    LONC_REPORT_FIELD(std::uint64_t, "queue", "queue", r.queue),
    LONC_REPORT_FIELD(std::uint64_t, "clients", "clients", r.clients),
    LONC_REPORT_FIELD(std::uint64_t, "spool_pending", "spool_pending", r.spool_pending),
    // loncstatus.json has the age instead (spool_oldest_age in status.hpp).
    LONC_REPORT_FIELD(std::uint64_t, "spool_oldest", "", r.spool_oldest),
    LONC_REPORT_FIELD(std::uint64_t, "spool_delivered", "spool_delivered", r.spool_delivered),
    LONC_REPORT_FIELD(std::uint64_t, "spool_refused", "", r.spool_refused),
    LONC_REPORT_FIELD(std::uint64_t, "spool_bad", "spool_bad", r.spool_bad),
    LONC_REPORT_FIELD(LatencyHistogram, "latency", "", r.latency),
    LONC_REPORT_FIELD(std::string, "status", "status", r.status),
    LONC_REPORT_FIELD(std::string, "last_log", "last_log", r.last_log),
    LONC_REPORT_FIELD(double, "cpu", "", r.process.cpu_seconds),
    LONC_REPORT_FIELD(std::uint64_t, "rss", "", r.process.rss_bytes),
    LONC_REPORT_FIELD(std::uint64_t, "fds", "", r.process.open_fds),
};

#undef LONC_REPORT_FIELD

// Fields added after the first release: a report without them (from an
// older child, during an upgrade) keeps their defaults.
[[nodiscard]] inline bool report_field_optional(std::string_view key) noexcept {
    return key == "health" || key == "link_failures" || key == "links_max" ||
           key == "links_opened" || key == "links_closed" || key == "handshakes";
}

// Calls f(row) for every row of child_report_fields, in order.
template <typename F> void for_each_report_field(F&& f) {
    std::apply([&](const auto&... row) { (f(row), ...); }, child_report_fields);
}

// loncstatus.json's view of a report: the fields that have a json name, set
// in the peer object (docs/status.md).
void add_to_json(const ChildReport& r, nlohmann::json& peer);
// The inverse, for readers of loncstatus.json (lonctl): a field that is
// absent or of another type keeps its default.
[[nodiscard]] ChildReport report_from_json(const nlohmann::json& peer);

} // namespace lonc
