#include "lonc/histogram.hpp"
#include "lonc/metrics.hpp"

#include <gtest/gtest.h>

#include <regex>
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
    up.fields = {{"links_up", "1"},       {"requests", "12"},
                 {"con_lost", "1"},       {"queue", "0"},
                 {"spool_pending", "2"},  {"spool_oldest", "400"},
                 {"latency", h.encode()}, {"cpu", "0.250000"},
                 {"rss", "4096"},         {"fds", "9"}};
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
         {"lonc_build_info{version=\"" LONC_VERSION "\"} 1", "lonc_status_generation 7",
          "lonc_peers{state=\"running\"} 1", "lonc_peers{state=\"unreachable\"} 1",
          "lonc_link_up{peer=\"msul2\"} 1", "lonc_link_up{peer=\"lon_capa.edu\"} 0",
          "lonc_child_restarts_total{peer=\"msul2\"} 3", "lonc_requests_total{peer=\"msul2\"} 12",
          "lonc_con_lost_total{peer=\"msul2\"} 1", "lonc_spool_pending{peer=\"msul2\"} 2",
          "lonc_spool_oldest_age_seconds{peer=\"msul2\"} 600",
          "lonc_process_open_fds{process=\"PARENT\"} 12",
          "lonc_process_open_fds{process=\"msul2\"} 9",
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

} // namespace
} // namespace lonc
