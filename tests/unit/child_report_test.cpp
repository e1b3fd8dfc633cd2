// The child's status report: every field survives its payload, and a
// payload that is not a whole report is refused with the reason.
#include "lonc/core/child_report.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace lonc {
namespace {

// Every field set to a value unlike its default and unlike the others.
ChildReport full() {
    ChildReport r;
    r.generation = 18446744073709551615ULL;
    r.link = LinkState::up;
    r.links_up = 2;
    r.links_total = 3;
    r.since = -5;
    r.local_ports = "40001,40002";
    r.last_error = "write failed: Broken pipe";
    r.health = "sick";
    r.link_failures = 16;
    r.requests = 4;
    r.errors = 5;
    r.con_lost = 6;
    r.rejected = 7;
    r.timeouts = 8;
    r.reconnects = 9;
    r.queue = 10;
    r.clients = 11;
    r.spool_pending = 12;
    r.spool_oldest = 1700000000;
    r.spool_delivered = 13;
    r.spool_refused = 14;
    r.spool_bad = 15;
    r.latency.observe(0.0002);
    r.latency.observe(7);
    r.status = "Tue Nov 14 22:13:20 2023: Connected";
    r.last_log = "Tue Nov 14 22:13:18 2023: Secure connection initialized";
    r.process = {1.5, 4096, 9};
    return r;
}

// The payload with the line of key replaced (or dropped when line is "").
std::string with_line(const std::string& payload, const std::string& key, const std::string& line) {
    const auto at = payload.find(key + "=");
    EXPECT_NE(at, std::string::npos) << key;
    const auto end = payload.find('\n', at) + 1;
    return payload.substr(0, at) + line + payload.substr(end);
}

TEST(ChildReport, EveryFieldSurvivesTheRoundTrip) {
    const auto r = full();
    std::string error;
    const auto back = ChildReport::decode(r.encode(), error);
    ASSERT_TRUE(back) << error;
    // Compared through the table, so a field added to it is compared too.
    for_each_report_field([&](const auto& row) {
        using T = std::decay_t<decltype(row.cget(r))>;
        if constexpr (std::is_same_v<T, LatencyHistogram>) {
            EXPECT_EQ(row.cget(*back).encode(), row.cget(r).encode()) << row.key;
        } else {
            EXPECT_EQ(row.cget(*back), row.cget(r)) << row.key;
            EXPECT_NE(row.cget(r), row.cget(ChildReport{})) << row.key << ": set it in full()";
        }
    });
}

TEST(ChildReport, PayloadIsOneKeyValueLineAField) {
    const auto text = full().encode();
    EXPECT_EQ(text.rfind("generation=18446744073709551615\nlink=up\nlinks_up=2\n", 0), 0U);
    EXPECT_NE(text.find("\ncpu=1.500000\nrss=4096\nfds=9\n"), std::string::npos);
    std::set<std::string_view> keys;
    std::size_t rows = 0;
    for_each_report_field([&](const auto& row) {
        ++rows;
        EXPECT_TRUE(keys.insert(row.key).second) << "duplicate key " << row.key;
    });
    EXPECT_EQ(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')), rows);
}

TEST(ChildReport, OddValuesAreEscaped) {
    auto r = full();
    r.last_error = "two\nlines \\n and a = sign\\";
    r.status = "\n";
    r.last_log = "";
    const auto text = r.encode();
    EXPECT_NE(text.find("last_error=two\\nlines \\\\n and a = sign\\\\\n"), std::string::npos);
    std::string error;
    const auto back = ChildReport::decode(text, error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(back->last_error, r.last_error);
    EXPECT_EQ(back->status, "\n");
    EXPECT_EQ(back->last_log, "");
}

TEST(ChildReport, AMissingFieldIsRefused) {
    std::string error;
    EXPECT_FALSE(ChildReport::decode(with_line(full().encode(), "timeouts", ""), error));
    EXPECT_EQ(error, "missing field timeouts");
    EXPECT_FALSE(ChildReport::decode("", error));
    EXPECT_EQ(error, "missing field generation");
}

// An older child (during an upgrade) does not send the fields added since.
TEST(ChildReport, FieldsAddedLaterMayBeMissing) {
    auto text = with_line(full().encode(), "health", "");
    text = with_line(text, "link_failures", "");
    std::string error;
    const auto r = ChildReport::decode(text, error);
    ASSERT_TRUE(r) << error;
    EXPECT_EQ(r->health, "down");
    EXPECT_EQ(r->link_failures, 0U);
}

TEST(ChildReport, ABadValueIsRefused) {
    const auto text = full().encode();
    std::string error;
    for (const auto& [key, line] : std::initializer_list<std::pair<std::string, std::string>>{
             {"requests", "requests=12x\n"},
             {"requests", "requests=-1\n"},
             {"requests", "requests=\n"},
             {"requests", "requests=99999999999999999999\n"},
             {"since", "since=soon\n"},
             {"link", "link=maybe\n"},
             {"cpu", "cpu=fast\n"},
             {"latency", "latency=1 2 3\n"}}) {
        EXPECT_FALSE(ChildReport::decode(with_line(text, key, line), error)) << line;
        EXPECT_EQ(error.rfind("bad value for " + key + ": '", 0), 0U) << error;
    }
}

TEST(ChildReport, MalformedLinesAreRefused) {
    const auto text = full().encode();
    std::string error;
    EXPECT_FALSE(ChildReport::decode(text + "no equals sign\n", error));
    EXPECT_EQ(error, "line without key=value");
    EXPECT_FALSE(ChildReport::decode(text + "=value\n", error));
    EXPECT_EQ(error, "line without key=value");
    EXPECT_FALSE(ChildReport::decode(text + "x=1", error));
    EXPECT_EQ(error, "last line without a newline");
    EXPECT_FALSE(ChildReport::decode(with_line(text, "status", "status=a\\tb\n"), error));
    EXPECT_EQ(error, "bad escape in status");
    EXPECT_FALSE(ChildReport::decode(with_line(text, "status", "status=a\\\n"), error));
    EXPECT_EQ(error, "bad escape in status");
}

TEST(ChildReport, UnknownKeysAreIgnored) {
    const auto text = "from_a_newer_child=whatever\\n\n" + full().encode() + "zzz=1\n";
    std::string error;
    const auto back = ChildReport::decode(text, error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(back->encode(), full().encode());
}

TEST(LinkState, TextBothWays) {
    EXPECT_EQ(to_string(LinkState::up), "up");
    EXPECT_EQ(to_string(LinkState::down), "down");
    EXPECT_EQ(parse_link_state("up"), LinkState::up);
    EXPECT_EQ(parse_link_state("down"), LinkState::down);
    EXPECT_FALSE(parse_link_state("UP"));
    EXPECT_FALSE(parse_link_state(""));
}

TEST(ProcessFacts, ThisProcessHasSome) {
    const auto p = read_self_facts();
    EXPECT_GT(p.rss_bytes, 0U);
    EXPECT_GE(p.open_fds, 3U); // stdin, stdout, stderr
    EXPECT_GE(p.cpu_seconds, 0.0);
}

} // namespace
} // namespace lonc
