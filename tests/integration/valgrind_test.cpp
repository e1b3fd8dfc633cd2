// One run of the real daemon under valgrind's memcheck (release build):
// a small but complete scenario through lonc, then a clean stop. Every lonc
// process (the supervisor and each forked child) must end with no memory
// errors, no leaks and no descriptors open but stdin, stdout and stderr.
#include <gtest/gtest.h>

#include <future>
#include <regex>
#include <signal.h>
#include <sys/stat.h>
#include <thread>

#include "cluster.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;

TEST(Valgrind, ScenarioThroughLoncHasNoErrorsNoLeaksNoOpenDescriptors) {
    const std::string vg = "/usr/bin/valgrind";
    ASSERT_TRUE(std::filesystem::exists(vg)) << "valgrind is missing (scripts/lib.sh installs it)";
    // valgrind writes one log per process; children run as www.
    TempDir logs("lonc-valgrind");
    ::chmod(logs.path().c_str(), 0777);
    Cluster c({.hosts = 2,
               .lonc_args = {"--request-timeout", "10", "--max-line", "1000", "--handshake-timeout",
                             "30"},
               .lonc_wrapper = {vg, "--tool=memcheck", "--leak-check=full",
                                "--show-leak-kinds=definite,indirect,possible",
                                "--errors-for-leak-kinds=definite,indirect,possible",
                                "--track-fds=yes", "--trace-children=yes", "--error-exitcode=99",
                                "--vgdb=no", "--log-file=" + (logs / "vg.%p").string()}});
    // The scenario: plain and encrypted requests both ways, big lines, an
    // over-long line, a client vanishing mid-request, a lost and regained
    // link, a status request.
    for (int h = 0; h < 2; ++h) {
        EXPECT_EQ(c.request(h, "ping", 30s), c.id(h));
        EXPECT_EQ(c.request(h, "encrypt:auth:dom:user:pw", 30s), "authorized");
        EXPECT_EQ(c.request(h, "put:dom:user:ns:key=value" + std::to_string(h), 30s), "ok");
        EXPECT_EQ(c.request(h, "eget:dom:user:ns:key", 30s), "value" + std::to_string(h));
    }
    const std::string long_token(900, 'v');
    EXPECT_EQ(c.request(1, "echo:" + long_token, 30s), long_token);
    auto big = c.request(1, "bytes:300000", 30s);
    ASSERT_TRUE(big);
    EXPECT_EQ(big->size(), 300000U);
    {
        auto a = c.client(1);
        ASSERT_TRUE(a);
        EXPECT_EQ(a->request(std::string(2000, 'x'), 30s), "con_lost");
    }
    {
        auto gone = c.client(1);
        ASSERT_TRUE(gone);
        ASSERT_TRUE(gone->send_line("sleep:300"));
    }
    EXPECT_EQ(c.request(1, "badenc", 30s), "con_lost"); // the link resets
    ASSERT_TRUE(wait_until([&] { return c.request(1, "ping", 30s) == c.id(1); }, 60s));
    c.kill_sim(1);
    ASSERT_TRUE(c.wait_no_socket(1, 30s));
    c.start_sim(1);
    ASSERT_TRUE(c.wait_socket(1, 60s));
    EXPECT_EQ(c.request(1, "echo:back", 30s), "back");
    const auto spooled = c.spool_file("1.m.h1", "echo:spooled\n");
    EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(spooled); }, 60s));
    ::kill(c.lonc_pid(), SIGUSR1);
    EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(c.status_json()); }, 30s));

    // A clean stop, then every process's report.
    const auto pids = c.lonc_pids();
    ASSERT_EQ(pids.size(), 3U);
    c.lonc().signal(SIGTERM);
    const auto st = c.lonc().wait(120s);
    ASSERT_TRUE(st.has_value()) << "lonc did not stop under valgrind";
    EXPECT_TRUE(st->exited(0)) << st->to_string();
    ASSERT_TRUE(wait_until([&] { return c.children().empty(); }, 60s));
    for (const auto pid : pids) {
        const auto file = logs / ("vg." + std::to_string(pid));
        ASSERT_TRUE(
            wait_until([&] { return slurp(file).find("ERROR SUMMARY") != std::string::npos; }, 30s))
            << file;
        const auto text = slurp(file);
        EXPECT_NE(text.find("ERROR SUMMARY: 0 errors"), std::string::npos) << text;
        // No leaks (reachable blocks are what exit() leaves: not leaks).
        const bool no_leak = text.find("All heap blocks were freed") != std::string::npos ||
                             (text.find("definitely lost: 0 bytes") != std::string::npos &&
                              text.find("indirectly lost: 0 bytes") != std::string::npos &&
                              text.find("possibly lost: 0 bytes") != std::string::npos);
        EXPECT_TRUE(no_leak) << text;
        // Only stdin, stdout and stderr are open at exit.
        std::smatch m;
        ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(FILE DESCRIPTORS: ([0-9]+) open)")))
            << text;
        EXPECT_EQ(m[1].str(), "3") << text;
        std::printf("valgrind %s: %s\n", file.filename().c_str(),
                    text.substr(text.rfind("ERROR SUMMARY")).c_str());
    }
}

} // namespace
} // namespace lonc::test
