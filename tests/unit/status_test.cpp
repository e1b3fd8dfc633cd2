// loncstatus.txt and loncstatus.json rendered from a known set of
// reports, compared byte for byte with what loncron, lonctl and people read
// (the formats of the original and of docs/status.md).
#include "lonc/core/child_report.hpp"
#include "lonc/supervisor/status.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lonc {
namespace {

// A peer with every fact set, one that did not answer, an idle one, one
// without a child, and a removed peer's undeliverable files.
StatusReport known_report() {
    StatusReport r;
    r.generation = 7;
    r.time = 1700000000;
    r.parent_pid = 100;
    r.parent_status = "Tue Nov 14 22:13:20 2023: Sleeping";
    r.parent_last_log = "Tue Nov 14 22:13:19 2023: Done\tstarting";
    r.reload.time = 1699999000;
    r.reload.last_success = 1699998000;
    r.reload.success = false;
    r.reload.result = "rejected: hosts.tab:3: bad";
    r.reload.undeliverable["gone"] = {"1.a.gone", "2.b.gone"};

    PeerStatus up;
    up.id = "msul2";
    up.pid = 42;
    up.state = "running";
    up.answered = true;
    up.link_up = true;
    up.restarts = 3;
    auto& a = up.report;
    a.generation = 7;
    a.link = LinkState::up;
    a.links_up = 2;
    a.links_total = 3;
    a.links_max = 8;
    a.links_opened = 5;
    a.links_closed = 3;
    a.handshakes = 7;
    a.since = 1699990000;
    a.local_ports = "40001,40002";
    a.last_error = "connect: Connection refused";
    a.health = "up";
    a.link_failures = 3;
    a.requests = 12;
    a.errors = 5;
    a.con_lost = 4;
    a.rejected = 1;
    a.timeouts = 2;
    a.reconnects = 6;
    a.queue = 7;
    a.clients = 8;
    a.spool_pending = 9;
    a.spool_oldest = 1699999400;
    a.spool_delivered = 10;
    a.spool_refused = 11;
    a.spool_bad = 13;
    a.latency.observe(0.0002);
    a.latency.observe(2);
    a.status = "Tue Nov 14 22:13:20 2023: Connected\tnow";
    a.last_log = "Tue Nov 14 22:13:18 2023: Secure connection initialized \xff";
    a.process = {0.25, 4096, 9};

    PeerStatus idle;
    idle.id = "idle";
    idle.pid = 44;
    idle.state = "running";
    idle.answered = true;
    auto& b = idle.report;
    b.generation = 7;
    b.links_total = 1;
    b.links_max = 1;
    b.since = 1699990001;
    b.status = "Tue Nov 14 22:13:20 2023: Idle";

    PeerStatus silent;
    silent.id = "h3";
    silent.pid = 43;
    silent.state = "running";
    PeerStatus gone;
    gone.id = "lon_capa.edu";
    gone.state = "unreachable";
    r.peers = {up, silent, idle, gone};
    return r;
}

class StatusFiles : public ::testing::Test {
protected:
    void SetUp() override {
        ::setenv("TZ", "UTC", 1);
        ::tzset();
    }
};

TEST_F(StatusFiles, TxtIsTheOriginalsFormat) {
    EXPECT_EQ(
        format_status_txt(known_report()),
        "LONC status Tue Nov 14 22:13:20 2023 - parent 100\n"
        "\n"
        "100\tPARENT\tTue Nov 14 22:13:20 2023: Sleeping\tTue Nov 14 22:13:19 2023: Done starting\n"
        "42\tmsul2\tTue Nov 14 22:13:20 2023: Connected now\tTue Nov 14 22:13:18 2023: Secure "
        "connection initialized \xff"
        "\n"
        "43\th3\tTue Nov 14 22:13:20 2023: no answer to status request\t\n"
        "44\tidle\tTue Nov 14 22:13:20 2023: Idle\t\n"
        "-\tgone\tTue Nov 14 22:13:20 2023: removed from hosts.tab; 2 delayed messages can no "
        "longer be delivered\t1.a.gone 2.b.gone\n");
}

TEST_F(StatusFiles, JsonIsTheDocumentedOne) {
    EXPECT_EQ(format_status_json(known_report()),
              "{\n"
              "  \"generation\": 7,\n"
              "  \"parent\": {\n"
              "    \"last_log\": \"Tue Nov 14 22:13:19 2023: Done\\tstarting\",\n"
              "    \"pid\": 100,\n"
              "    \"status\": \"Tue Nov 14 22:13:20 2023: Sleeping\"\n"
              "  },\n"
              "  \"peers\": [\n"
              "    {\n"
              "      \"answered\": true,\n"
              "      \"clients\": 8,\n"
              "      \"con_lost\": 4,\n"
              "      \"errors\": 5,\n"
              "      \"handshakes\": 7,\n"
              "      \"health\": \"up\",\n"
              "      \"id\": \"msul2\",\n"
              "      \"last_error\": \"connect: Connection refused\",\n"
              "      \"last_log\": \"Tue Nov 14 22:13:18 2023: Secure connection initialized \xef"
              "\xbf"
              "\xbd"
              "\",\n"
              "      \"link\": \"up\",\n"
              "      \"link_failures\": 3,\n"
              "      \"link_since\": 1699990000,\n"
              "      \"links_closed\": 3,\n"
              "      \"links_max\": 8,\n"
              "      \"links_opened\": 5,\n"
              "      \"links_total\": 3,\n"
              "      \"links_up\": 2,\n"
              "      \"local_ports\": \"40001,40002\",\n"
              "      \"pid\": 42,\n"
              "      \"queue\": 7,\n"
              "      \"reconnects\": 6,\n"
              "      \"rejected\": 1,\n"
              "      \"requests\": 12,\n"
              "      \"spool_bad\": 13,\n"
              "      \"spool_delivered\": 10,\n"
              "      \"spool_oldest_age_seconds\": 600,\n"
              "      \"spool_pending\": 9,\n"
              "      \"state\": \"running\",\n"
              "      \"status\": \"Tue Nov 14 22:13:20 2023: Connected\\tnow\",\n"
              "      \"timeouts\": 2\n"
              "    },\n"
              "    {\n"
              "      \"answered\": false,\n"
              "      \"id\": \"h3\",\n"
              "      \"pid\": 43,\n"
              "      \"state\": \"running\"\n"
              "    },\n"
              "    {\n"
              "      \"answered\": true,\n"
              "      \"clients\": 0,\n"
              "      \"con_lost\": 0,\n"
              "      \"errors\": 0,\n"
              "      \"handshakes\": 0,\n"
              "      \"health\": \"down\",\n"
              "      \"id\": \"idle\",\n"
              "      \"last_error\": \"\",\n"
              "      \"last_log\": \"\",\n"
              "      \"link\": \"down\",\n"
              "      \"link_failures\": 0,\n"
              "      \"link_since\": 1699990001,\n"
              "      \"links_closed\": 0,\n"
              "      \"links_max\": 1,\n"
              "      \"links_opened\": 0,\n"
              "      \"links_total\": 1,\n"
              "      \"links_up\": 0,\n"
              "      \"local_ports\": \"\",\n"
              "      \"pid\": 44,\n"
              "      \"queue\": 0,\n"
              "      \"reconnects\": 0,\n"
              "      \"rejected\": 0,\n"
              "      \"requests\": 0,\n"
              "      \"spool_bad\": 0,\n"
              "      \"spool_delivered\": 0,\n"
              "      \"spool_oldest_age_seconds\": null,\n"
              "      \"spool_pending\": 0,\n"
              "      \"state\": \"running\",\n"
              "      \"status\": \"Tue Nov 14 22:13:20 2023: Idle\",\n"
              "      \"timeouts\": 0\n"
              "    },\n"
              "    {\n"
              "      \"answered\": false,\n"
              "      \"id\": \"lon_capa.edu\",\n"
              "      \"pid\": null,\n"
              "      \"state\": \"unreachable\"\n"
              "    }\n"
              "  ],\n"
              "  \"reload\": {\n"
              "    \"last_success\": 1699998000,\n"
              "    \"result\": \"rejected: hosts.tab:3: bad\",\n"
              "    \"success\": false,\n"
              "    \"time\": 1699999000,\n"
              "    \"undeliverable\": {\n"
              "      \"gone\": [\n"
              "        \"1.a.gone\",\n"
              "        \"2.b.gone\"\n"
              "      ]\n"
              "    }\n"
              "  },\n"
              "  \"schema\": 1,\n"
              "  \"time\": 1700000000\n"
              "}\n");
}

// What the supervisor renders is what the child sent: the same bytes after
// the report went through its payload.
TEST_F(StatusFiles, ReportsThatCrossedTheChannelRenderTheSame) {
    auto r = known_report();
    const auto direct = format_status_json(r) + format_status_txt(r);
    for (auto& p : r.peers) {
        std::string error;
        const auto back = ChildReport::decode(p.report.encode(), error);
        ASSERT_TRUE(back) << error;
        p.report = *back;
    }
    EXPECT_EQ(format_status_json(r) + format_status_txt(r), direct);
}

// lonctl reads loncstatus.json back into reports: every field the document
// has comes back.
TEST_F(StatusFiles, JsonReadsBackIntoTheReport) {
    const auto r = known_report();
    const auto doc = nlohmann::json::parse(format_status_json(r));
    const auto back = report_from_json(doc["peers"][0]);
    EXPECT_EQ(back.link, LinkState::up);
    EXPECT_EQ(back.links_up, 2U);
    EXPECT_EQ(back.links_total, 3U);
    EXPECT_EQ(back.since, 1699990000);
    EXPECT_EQ(back.requests, 12U);
    EXPECT_EQ(back.errors, 5U);
    EXPECT_EQ(back.spool_bad, 13U);
    EXPECT_EQ(back.local_ports, "40001,40002");
    EXPECT_EQ(back.last_error, "connect: Connection refused");
    EXPECT_EQ(back.status, "Tue Nov 14 22:13:20 2023: Connected\tnow");
    // Not in the document: defaults.
    EXPECT_EQ(back.spool_refused, 0U);
    EXPECT_EQ(back.latency.count(), 0U);
    // A peer without facts reads as an empty report.
    EXPECT_EQ(report_from_json(doc["peers"][1]).requests, 0U);
}

TEST_F(StatusFiles, SpoolAgeIsNoneWithoutAnAnswerOrAWaitingFile) {
    const auto r = known_report();
    EXPECT_EQ(spool_oldest_age(r.peers[0], r.time), 600);
    EXPECT_FALSE(spool_oldest_age(r.peers[1], r.time)); // did not answer
    EXPECT_FALSE(spool_oldest_age(r.peers[2], r.time)); // nothing waits
    // A clock that went back does not give a negative age.
    EXPECT_EQ(spool_oldest_age(r.peers[0], 1699999000), 0);
}

TEST(WriteFileAtomic, ReplacesTheFileAndCreatesTheDirectory) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("lonc_status_test." + std::to_string(::getpid()));
    const auto path = dir / "sub" / "loncstatus.txt";
    std::string error;
    ASSERT_TRUE(write_file_atomic(path, "one\n", error)) << error;
    ASSERT_TRUE(write_file_atomic(path, "two\n", error)) << error;
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(text.str(), "two\n");
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(path.parent_path()),
                            std::filesystem::directory_iterator{}),
              1); // no temporary left behind
    std::filesystem::remove_all(dir);
}

TEST(ParentSummary, CountsPeersChildrenLinksUnreachableAndSkipped) {
    std::vector<PeerStatus> peers(4);
    peers[0].state = "running";
    peers[0].link_up = true;
    peers[1].state = "running";
    peers[2].state = "unreachable";
    peers[3].state = "skipped";
    EXPECT_EQ(parent_summary(peers),
              "Sleeping: 4 peers, 2 children, 1 links up, 1 unreachable, 1 skipped");
    EXPECT_EQ(parent_summary({}),
              "Sleeping: 0 peers, 0 children, 0 links up, 0 unreachable, 0 skipped");
}

} // namespace
} // namespace lonc
