// A short run of lonc-bench (seconds): it must run to the end, every reply
// must be the one asked for, and lonc's CPU must have been read. Speed is
// never asserted here (scripts/bench measures it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "process.hpp"
#include "temp_dir.hpp"

namespace {

using namespace lonc::test;

std::vector<std::map<std::string, std::string>> read_csv(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string line;
    std::vector<std::string> header;
    std::vector<std::map<std::string, std::string>> rows;
    while (std::getline(in, line)) {
        std::vector<std::string> fields;
        std::stringstream ss(line);
        std::string f;
        while (std::getline(ss, f, ',')) {
            fields.push_back(f);
        }
        if (!line.empty() && line.back() == ',') {
            fields.emplace_back();
        }
        if (header.empty()) {
            header = fields;
            continue;
        }
        std::map<std::string, std::string> row;
        for (std::size_t i = 0; i < header.size() && i < fields.size(); ++i) {
            row[header[i]] = fields[i];
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

double number(const std::map<std::string, std::string>& row, const std::string& key) {
    const auto it = row.find(key);
    return it == row.end() || it->second.empty() ? 0.0 : std::stod(it->second);
}

TEST(BenchSmoke, RunsRelaysEveryReplyToItsClientAndReadsLoncCpu) {
    TempDir dir("lonc-bench-smoke");
    const auto out = dir / "out";
    const auto san = dir.make_dir("sanitizer", "www", 0777);
    SpawnOptions so;
    so.stderr_file = (dir / "bench.log").string();
    auto p = Process::spawn(
        {LONC_BENCH_PATH, "--smoke", "--out", out.string(), "--sanitizer-dir", san.string()}, so);
    const auto st = p.wait(std::chrono::seconds(240));
    ASSERT_TRUE(st.has_value()) << "lonc-bench did not finish:\n" << slurp(so.stderr_file);
    ASSERT_TRUE(st->exited(0)) << st->to_string() << "\n" << slurp(so.stderr_file);

    const auto rows = read_csv(out / "results.csv");
    ASSERT_GE(rows.size(), 20U) << slurp(out / "results.csv");
    double lonc_cpu = 0;
    double requests = 0;
    std::map<std::string, int> servers;
    for (const auto& r : rows) {
        EXPECT_EQ(r.at("crossed"), "0") << r.at("server") << " " << r.at("pattern");
        EXPECT_EQ(r.at("errors"), "0") << r.at("server") << " " << r.at("pattern");
        EXPECT_GT(number(r, "requests"), 0) << r.at("server") << " " << r.at("pattern");
        requests += number(r, "requests");
        ++servers[r.at("server")];
        if (r.at("server") == "lonc") {
            lonc_cpu += number(r, "server_cpu_us_per_req");
        }
    }
    EXPECT_GT(lonc_cpu, 0) << "no lonc CPU time was read from /proc";
    EXPECT_GT(servers["direct-1"], 0);
    EXPECT_GT(servers["bare"], 0);
    EXPECT_GT(servers["lonc"], 0);

    std::map<std::string, double> summary;
    for (const auto& r : read_csv(out / "summary.csv")) {
        summary[r.at("key")] = number(r, "value");
    }
    EXPECT_EQ(summary["crossed"], 0);
    EXPECT_EQ(summary["crowd_served"], summary["crowd_clients"]);
    EXPECT_GT(summary["crowd_clients"], 0);
    EXPECT_EQ(summary["crowd_errors"] + summary["crowd_connect_errors"], 0);
    EXPECT_EQ(summary["fanout_sockets"], summary["fanout_peers"]);
    EXPECT_GT(summary["fanout_children"], 0);
    EXPECT_GT(summary["fanout_private_dirty_kib_max"], 0);
    // Nothing is logged per request: thousands were relayed, a handful of
    // lines at most were written meanwhile.
    EXPECT_GT(requests, 1000);
    EXPECT_LT(summary["lonc_log_lines_under_load"], requests / 100);

    EXPECT_TRUE(std::filesystem::exists(out / "results.md"));
    EXPECT_TRUE(std::filesystem::exists(out / "scaling-persistent.dat"));
    for (const auto& e : std::filesystem::directory_iterator(san)) {
        ADD_FAILURE() << "sanitizer report " << e.path() << ":\n" << slurp(e.path());
    }
}

} // namespace
