#include "lonc/core/histogram.hpp"
#include "lonc/supervisor/metrics.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace lonc {
namespace {

StatusReport report() {
    StatusReport r;
    r.generation = 7;
    r.time = 1000;
    PeerStatus up;
    up.id = "msul2";
    up.pid = 42;
    up.state = "running";
    up.answered = true;
    up.link_up = true;
    up.restarts = 3;
    LatencyHistogram h;
    h.observe(0.0002);
    h.observe(0.0002);
    h.observe(2);
    up.report.links_up = 1;
    up.report.requests = 12;
    up.report.con_lost = 1;
    up.report.spool_pending = 2;
    up.report.spool_oldest = 400;
    up.report.latency = h;
    up.report.process = {0.25, 4096, 9};
    PeerStatus gone;
    gone.id = "lon_capa.edu";
    gone.state = "unreachable";
    r.peers = {up, gone};
    return r;
}

std::string render() {
    const auto r = report();
    return format_metrics({&r, ProcessFacts{1.5, 8192, 12}, 900});
}

TEST(Metrics, SamplesCarryThePeerAndTheFacts) {
    const auto text = render();
    for (const char* line :
         {"lonc_build_info{version=\"" LONC_VERSION "\"} 1", "lonc_status_generations_total 7",
          "lonc_peers{state=\"running\"} 1", "lonc_peers{state=\"unreachable\"} 1",
          "lonc_link_up{peer=\"msul2\"} 1", "lonc_link_up{peer=\"lon_capa.edu\"} 0",
          "lonc_child_restarts_total{peer=\"msul2\"} 3", "lonc_requests_total{peer=\"msul2\"} 12",
          "lonc_con_lost_total{peer=\"msul2\"} 1", "lonc_spool_pending{peer=\"msul2\"} 2",
          "lonc_spool_oldest_age_seconds{peer=\"msul2\"} 600",
          "lonc_process_open_fds{process=\"supervisor\"} 12",
          "lonc_process_open_fds{peer=\"msul2\",process=\"child\"} 9",
          "lonc_request_duration_seconds_count{peer=\"msul2\"} 3",
          "lonc_request_duration_seconds_bucket{peer=\"msul2\",le=\"0.00025\"} 2",
          "lonc_request_duration_seconds_bucket{peer=\"msul2\",le=\"1\"} 2",
          "lonc_request_duration_seconds_bucket{peer=\"msul2\",le=\"5\"} 3",
          "lonc_request_duration_seconds_bucket{peer=\"msul2\",le=\"+Inf\"} 3"}) {
        EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
    }
    // A peer without fresh facts has no per-request samples.
    EXPECT_EQ(text.find("lonc_requests_total{peer=\"lon_capa.edu\"}"), std::string::npos);
}

TEST(Metrics, EveryFamilyHasHelpAndTypeOnce) {
    const auto text = render();
    std::istringstream in(text);
    std::string line;
    std::map<std::string, int> types;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m,
                             std::regex(R"(# TYPE ([a-z_]+) (counter|gauge|histogram))"))) {
            ++types[m[1]];
        }
    }
    EXPECT_GE(types.size(), 15U);
    for (const auto& [name, n] : types) {
        EXPECT_EQ(n, 1) << name;
        EXPECT_NE(text.find("# HELP " + name + " "), std::string::npos) << name;
    }
}

// Each fact of a child's report lands in its own series, labelled with the
// peer; the process series also say which kind of process they describe.
TEST(Metrics, NamesAndLabelsFromAReport) {
    StatusReport r;
    r.time = 2000;
    PeerStatus p;
    p.id = "h1";
    p.pid = 5;
    p.state = "running";
    p.answered = true;
    auto& f = p.report;
    f.links_up = 21;
    f.requests = 22;
    f.con_lost = 23;
    f.rejected = 24;
    f.timeouts = 25;
    f.reconnects = 26;
    f.spool_delivered = 27;
    f.spool_bad = 28;
    f.queue = 29;
    f.clients = 30;
    f.spool_pending = 31;
    f.spool_oldest = 1968;
    f.health = "sick";
    f.link_failures = 37;
    f.links_max = 38;
    f.links_opened = 39;
    f.links_closed = 40;
    f.handshakes = 41;
    f.process = {0.5, 33, 34};
    r.peers = {p};
    const auto text = format_metrics({&r, ProcessFacts{2.5, 35, 36}, 1});
    for (const char* line :
         {"lonc_links_up{peer=\"h1\"} 21", "lonc_requests_total{peer=\"h1\"} 22",
          "lonc_con_lost_total{peer=\"h1\"} 23", "lonc_rejected_total{peer=\"h1\"} 24",
          "lonc_timeouts_total{peer=\"h1\"} 25", "lonc_reconnects_total{peer=\"h1\"} 26",
          "lonc_spool_delivered_total{peer=\"h1\"} 27", "lonc_spool_bad_total{peer=\"h1\"} 28",
          "lonc_queue_depth{peer=\"h1\"} 29", "lonc_clients{peer=\"h1\"} 30",
          "lonc_spool_pending{peer=\"h1\"} 31", "lonc_spool_oldest_age_seconds{peer=\"h1\"} 32",
          "lonc_request_duration_seconds_count{peer=\"h1\"} 0",
          "lonc_process_cpu_seconds_total{peer=\"h1\",process=\"child\"} 0.5",
          "lonc_process_resident_memory_bytes{peer=\"h1\",process=\"child\"} 33",
          "lonc_process_open_fds{peer=\"h1\",process=\"child\"} 34",
          "lonc_process_cpu_seconds_total{process=\"supervisor\"} 2.5",
          "lonc_process_resident_memory_bytes{process=\"supervisor\"} 35",
          "lonc_process_open_fds{process=\"supervisor\"} 36"}) {
        EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
    }
    // The link facts, each with its own value: a swapped field shows.
    for (const char* line :
         {"lonc_link_sick{peer=\"h1\"} 1", "lonc_link_failures_total{peer=\"h1\"} 37",
          "lonc_links_max{peer=\"h1\"} 38", "lonc_links_opened_total{peer=\"h1\"} 39",
          "lonc_links_closed_total{peer=\"h1\"} 40", "lonc_handshakes_total{peer=\"h1\"} 41"}) {
        EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
    }
}

// docs/operations.md's table of metrics (one a row: `name` | type | ...)
// is what lonc writes: every family, with its type, and nothing more.
TEST(Metrics, OperationsMdListsEveryFamilyWithItsType) {
    auto r = report();
    r.reload.undeliverable["gone"] = {"1.a.gone"}; // the one family written only then
    std::map<std::string, std::string> written;
    std::istringstream text(format_metrics({&r, ProcessFacts{1.5, 8192, 12}, 900}));
    std::string line;
    const std::regex type_re(R"(# TYPE (\S+) (\S+))");
    while (std::getline(text, line)) {
        std::smatch m;
        if (std::regex_match(line, m, type_re)) {
            written[m[1]] = m[2];
        }
    }
    std::ifstream md(LONC_OPERATIONS_MD);
    ASSERT_TRUE(md) << LONC_OPERATIONS_MD;
    std::map<std::string, std::string> documented;
    bool in_metrics = false;
    const std::regex row_re(R"(\| `(lonc_[a-z_]+)` \| ([a-z]+) \|.*)");
    while (std::getline(md, line)) {
        if (line.rfind("## ", 0) == 0) {
            in_metrics = line == "## Metrics";
        }
        std::smatch m;
        if (in_metrics && std::regex_match(line, m, row_re)) {
            EXPECT_EQ(documented.count(m[1]), 0U) << "listed twice: " << m[1];
            documented[m[1]] = m[2];
        } else if (in_metrics && line.rfind("| `lonc_", 0) == 0) {
            ADD_FAILURE() << "not one metric a row, `name` | type | ...: " << line;
        }
    }
    EXPECT_GE(written.size(), 20U);
    EXPECT_EQ(documented, written) << "docs/operations.md, section Metrics";
}

// ------------------------------------------------------------ status files

TEST(StatusJson, HasASchemaAndTheSpoolAgeInSeconds) {
    auto r = report();
    r.peers.push_back(r.peers.front());
    r.peers.back().id = "idle";
    r.peers.back().report.spool_pending = 0;
    r.peers.back().report.spool_oldest = 0;
    const auto doc = nlohmann::json::parse(format_status_json(r));
    EXPECT_EQ(doc["schema"], status_json_schema);
    EXPECT_EQ(doc["schema"], 1);
    const auto& peers = doc["peers"];
    ASSERT_EQ(peers.size(), 3U);
    // What the metric says too: an age at the report's time, not a time.
    EXPECT_EQ(peers[0]["spool_oldest_age_seconds"], 600);
    EXPECT_FALSE(peers[0].contains("spool_oldest"));
    EXPECT_TRUE(peers[2]["spool_oldest_age_seconds"].is_null()); // nothing waits
    EXPECT_FALSE(peers[1].contains("spool_oldest_age_seconds")); // no answer, no facts
    EXPECT_TRUE(peers[1]["pid"].is_null());
    EXPECT_EQ(peers[0]["requests"], 12);
    EXPECT_EQ(peers[0]["spool_pending"], 2);
}

// docs/status.md's tables name every field of loncstatus.json, each where
// it is (top level, parent, a peer always or only when it answered, reload),
// and no field lonc does not write.
TEST(StatusJson, StatusMdNamesEveryFieldWhereItIs) {
    auto r = report();
    r.reload.undeliverable["gone"] = {"1.a.gone"};
    const auto doc = nlohmann::json::parse(format_status_json(r));
    auto keys = [](const nlohmann::json& object) {
        std::set<std::string> out;
        for (const auto& [key, value] : object.items()) {
            out.insert(key);
        }
        return out;
    };
    std::map<std::string, std::set<std::string>> written;
    written["top"] = keys(doc);
    written["parent"] = keys(doc["parent"]);
    written["reload"] = keys(doc["reload"]);
    ASSERT_TRUE(doc["peers"][0]["answered"].get<bool>());
    ASSERT_FALSE(doc["peers"][1]["answered"].get<bool>());
    written["peers, always"] = keys(doc["peers"][1]);
    for (const auto& k : keys(doc["peers"][0])) {
        if (written["peers, always"].count(k) == 0) {
            written["peers, when answered"].insert(k);
        }
    }

    std::ifstream md(LONC_STATUS_MD);
    ASSERT_TRUE(md) << LONC_STATUS_MD;
    std::map<std::string, std::set<std::string>> documented;
    const std::map<std::string, std::string> sections = {{"## Top level", "top"},
                                                         {"## `parent`", "parent"},
                                                         {"## `peers[]`", "peers, always"},
                                                         {"## `reload`", "reload"}};
    std::string where;
    std::string line;
    const std::regex row_re(R"(\| `([a-z_]+)` \|.*)");
    while (std::getline(md, line)) {
        if (line.rfind("## ", 0) == 0) {
            const auto it = sections.find(line);
            where = it == sections.end() ? "" : it->second;
        } else if (where == "peers, always" && line.rfind("Present when `answered`", 0) == 0) {
            where = "peers, when answered";
        }
        std::smatch m;
        if (!where.empty() && std::regex_match(line, m, row_re)) {
            EXPECT_TRUE(documented[where].insert(m[1]).second) << "twice: " << m[1];
        }
    }
    EXPECT_GE(written["peers, when answered"].size(), 15U);
    EXPECT_EQ(documented, written) << "docs/status.md";
}

TEST(StatusTxt, IsTheOriginalsFormatByteForByte) {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
    StatusReport r;
    r.time = 1700000000;
    r.parent_pid = 100;
    r.parent_status = "Tue Nov 14 22:13:20 2023: Idle";
    r.parent_last_log = "Tue Nov 14 22:13:19 2023: Done\tstarting";
    PeerStatus up;
    up.id = "msul2";
    up.pid = 42;
    up.answered = true;
    up.report.status = "Tue Nov 14 22:13:20 2023: Connected";
    up.report.last_log = "Tue Nov 14 22:13:18 2023: Secure connection initialized";
    PeerStatus silent;
    silent.id = "h3";
    silent.pid = 43;
    PeerStatus none;
    none.id = "h4";
    r.peers = {up, silent, none};
    r.reload.undeliverable["gone"] = {"1.a.gone", "2.b.gone"};
    EXPECT_EQ(format_status_txt(r),
              "LONC status Tue Nov 14 22:13:20 2023 - parent 100\n"
              "\n"
              "100\tPARENT\tTue Nov 14 22:13:20 2023: Idle\tTue Nov 14 22:13:19 2023: Done "
              "starting\n"
              "42\tmsul2\tTue Nov 14 22:13:20 2023: Connected\tTue Nov 14 22:13:18 2023: Secure "
              "connection initialized\n"
              "43\th3\tTue Nov 14 22:13:20 2023: no answer to status request\t\n"
              "-\tgone\tTue Nov 14 22:13:20 2023: removed from hosts.tab; 2 delayed messages can "
              "no longer be delivered\t1.a.gone 2.b.gone\n");
}

} // namespace
} // namespace lonc
