#include "lonc/supervisor/metrics.hpp"

#include "lonc/core/control_words.hpp"
#include "lonc/core/histogram.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

namespace lonc {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The families in the order they are written, each filled per peer.
class Families {
public:
    MetricFamily& get(const std::string& name, MetricType type, const std::string& help) {
        for (auto& f : families_) {
            if (f.name == name) {
                return f;
            }
        }
        families_.push_back(MetricFamily{name, help, type, {}});
        return families_.back();
    }
    void add(const std::string& name, MetricType type, const std::string& help,
             std::vector<ClientMetric::Label> labels, double value) {
        ClientMetric m;
        m.label = std::move(labels);
        if (type == MetricType::Counter) {
            m.counter.value = value;
        } else {
            m.gauge.value = value;
        }
        get(name, type, help).metric.push_back(std::move(m));
    }
    [[nodiscard]] const std::vector<MetricFamily>& all() const { return families_; }

private:
    std::vector<MetricFamily> families_;
};

// The supervisor's series: {process="supervisor"}; a child's:
// {peer="<host id>",process="child"}.
void add_process(Families& fam, const std::string& peer, const ProcessFacts& p) {
    std::vector<ClientMetric::Label> l;
    if (!peer.empty()) {
        l.push_back({"peer", peer});
    }
    l.push_back({"process", peer.empty() ? "supervisor" : "child"});
    fam.add("lonc_process_cpu_seconds_total", MetricType::Counter,
            "User and system CPU time of a lonc process", l, p.cpu_seconds);
    fam.add("lonc_process_resident_memory_bytes", MetricType::Gauge,
            "Resident memory of a lonc process", l, static_cast<double>(p.rss_bytes));
    fam.add("lonc_process_open_fds", MetricType::Gauge, "Open descriptors of a lonc process", l,
            static_cast<double>(p.open_fds));
}

// lonc_request_duration_seconds of one peer: Prometheus' buckets are
// cumulative, the histogram's are not.
void add_latency(Families& fam, const std::vector<ClientMetric::Label>& l,
                 const LatencyHistogram& h) {
    ClientMetric m;
    m.label = l;
    m.histogram.sample_count = h.count();
    m.histogram.sample_sum = h.sum();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < LatencyHistogram::bounds.size(); ++i) {
        cumulative += h.bucket(i);
        m.histogram.bucket.push_back({cumulative, LatencyHistogram::bounds.at(i)});
    }
    m.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
    fam.get("lonc_request_duration_seconds", MetricType::Histogram,
            "Client requests from arrival to reply")
        .metric.push_back(std::move(m));
}

} // namespace

std::string format_metrics(const MetricsInput& in) {
    const auto& r = *in.report;
    Families fam;
    fam.add("lonc_build_info", MetricType::Gauge, "lonc's version, as a label",
            {{"version", LONC_VERSION}}, 1);
    fam.add("lonc_start_time_seconds", MetricType::Gauge, "When the supervisor started (epoch)", {},
            static_cast<double>(in.start_time));
    fam.add("lonc_status_generations_total", MetricType::Counter,
            "Status generations collected from the children", {},
            static_cast<double>(r.generation));
    std::map<std::string, double> states;
    for (const auto state : all_slot_states) {
        states[std::string(to_string(state))] = 0;
    }
    for (const auto& p : r.peers) {
        ++states[p.state];
    }
    for (const auto& [state, n] : states) {
        fam.add("lonc_peers", MetricType::Gauge, "Peers by the state of their child",
                {{"state", state}}, n);
    }
    add_process(fam, "", in.parent);
    // As Prometheus reports its own configuration reloads.
    fam.add("lonc_config_last_reload_successful", MetricType::Gauge,
            "1 if the last reload attempt (or the start) took the configuration", {},
            r.reload.success ? 1 : 0);
    fam.add("lonc_config_last_reload_success_timestamp_seconds", MetricType::Gauge,
            "When a configuration was last taken (a reload, or the start)", {},
            static_cast<double>(r.reload.last_success));
    fam.add("lonc_config_last_reload_attempt_timestamp_seconds", MetricType::Gauge,
            "When the last reload was attempted (the start before any)", {},
            static_cast<double>(r.reload.time));
    fam.add("lonc_config_last_reload_info", MetricType::Gauge,
            "The last reload attempt's result, with its reason", {{"result", r.reload.result}}, 1);
    for (const auto& [host, files] : r.reload.undeliverable) {
        fam.add("lonc_spool_undeliverable", MetricType::Gauge,
                "Delayed messages of a peer a reload removed: they can no longer be delivered",
                {{"peer", host}}, static_cast<double>(files.size()));
    }

    for (const auto& p : r.peers) {
        const std::vector<ClientMetric::Label> l = {{"peer", p.id}};
        fam.add("lonc_link_up", MetricType::Gauge, "1 while at least one link to the peer is up", l,
                p.link_up ? 1 : 0);
        fam.add("lonc_child_restarts_total", MetricType::Counter,
                "Children started for the peer after its first", l,
                static_cast<double>(p.restarts));
        if (!p.answered) {
            continue; // no child, or it did not answer in time: no fresh facts
        }
        const auto& f = p.report;
        auto value = [](std::uint64_t n) { return static_cast<double>(n); };
        fam.add("lonc_links_up", MetricType::Gauge, "Links to the peer that are up", l,
                value(f.links_up));
        fam.add("lonc_links_max", MetricType::Gauge,
                "Most links to the peer (--max-connections, at least --connections)", l,
                value(f.links_max));
        const std::tuple<const char*, std::uint64_t, const char*> counters[] = {
            {"lonc_requests_total", f.requests, "Client requests answered by the peer's lond"},
            {"lonc_con_lost_total", f.con_lost, "Client requests answered con_lost"},
            {"lonc_rejected_total", f.rejected,
             "Client requests refused by lonc (queue full, line too long)"},
            {"lonc_timeouts_total", f.timeouts, "Requests that ran past --request-timeout"},
            {"lonc_reconnects_total", f.reconnects, "Links to the peer that were up and went down"},
            {"lonc_links_opened_total", f.links_opened,
             "Links to the peer opened on demand (every link was busy)"},
            {"lonc_links_closed_total", f.links_closed,
             "Links to the peer opened on demand and closed when idle"},
            {"lonc_handshakes_total", f.handshakes, "Handshakes with the peer's lond completed"},
            {"lonc_link_failures_total", f.link_failures,
             "Link attempts that failed: no handshake, or down before lond answered"},
            {"lonc_spool_delivered_total", f.spool_delivered, "Delayed messages delivered"},
            {"lonc_spool_bad_total", f.spool_bad, "Delayed messages set aside as .bad"},
        };
        for (const auto& [name, n, help] : counters) {
            fam.add(name, MetricType::Counter, help, l, value(n));
        }
        fam.add("lonc_link_sick", MetricType::Gauge,
                "1 while links to the peer come up but die before lond answers a request", l,
                f.health == "sick" ? 1 : 0);
        fam.add("lonc_queue_depth", MetricType::Gauge, "Client requests waiting for a link", l,
                value(f.queue));
        fam.add("lonc_clients", MetricType::Gauge, "Open client connections", l, value(f.clients));
        fam.add("lonc_spool_pending", MetricType::Gauge, "Delayed messages waiting for delivery", l,
                value(f.spool_pending));
        fam.add("lonc_spool_oldest_age_seconds", MetricType::Gauge,
                "Age of the oldest waiting delayed message (0: none)", l,
                static_cast<double>(spool_oldest_age(p, r.time).value_or(0)));
        add_latency(fam, l, f.latency);
        add_process(fam, p.id, f.process);
    }
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, fam.all());
    return out.str();
}

} // namespace lonc
