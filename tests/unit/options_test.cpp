// Options at reload: the table of live options, the text children get,
// and the loader's file:line for a bad settings file.
#include "lonc/core/options.hpp"
#include "lonc/supervisor/startup.hpp"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <set>

#include "temp_dir.hpp"

namespace lonc {
namespace {

TEST(LiveOptions, EveryOptionHasAWayToBeReloaded) {
    CLI::App app;
    Options o;
    add_options(app, o);
    std::set<std::string> listed;
    for (const auto& v : option_values(o)) {
        listed.insert(v.name);
    }
    // Not options of a running lonc: actions and the settings file itself.
    const std::set<std::string> not_live = {"help", "settings", "version", "check-config",
                                            "print-settings"};
    for (const auto* opt : app.get_options()) {
        for (const auto& name : opt->get_lnames()) {
            if (not_live.count(name) == 0) {
                EXPECT_EQ(listed.count(name), 1U) << "--" << name << " is not in option_values()";
            }
        }
    }
}

TEST(LiveOptions, ChildOptionsTextRoundTrips) {
    Options a;
    a.request_timeout = 1.5;
    a.handshake_pause = 0.05;
    a.max_queue = 7;
    a.pipeline = 4;
    a.log_level = "debug";
    a.connections = 3; // not for children: needs a restart
    Options b;
    std::string error;
    ASSERT_TRUE(apply_options_text(b, child_options_text(a), error)) << error;
    EXPECT_EQ(b.request_timeout, 1.5);
    EXPECT_EQ(b.handshake_pause, 0.05);
    EXPECT_EQ(b.max_queue, 7U);
    EXPECT_EQ(b.pipeline, 4U);
    EXPECT_EQ(b.log_level, "debug");
    EXPECT_EQ(b.connections, 1U);
}

TEST(LiveOptions, BadTextChangesNothing) {
    Options o;
    std::string error;
    EXPECT_FALSE(apply_options_text(o, "request-timeout = -1\n", error));
    EXPECT_NE(error.find("request-timeout"), std::string::npos) << error;
    EXPECT_FALSE(apply_options_text(o, "retry-min = 10\nretry-max = 5\n", error));
    EXPECT_EQ(o.request_timeout, 300);
    EXPECT_EQ(o.retry_min, 2);
}

TEST(Loader, SettingsFileProblemsHaveFileAndLine) {
    test::TempDir dir("lonc-opt");
    dir.write("lonc.ini", "# comment\nrequest-timeout = 5\nrequest-timout = 5\nmax-queue = 0\n");
    // A relative --settings is taken from base, wherever the process is.
    const auto r = load_configuration({"lonc", "--settings", "lonc.ini"}, dir.path());
    EXPECT_EQ(r.code(), exit_usage);
    ASSERT_EQ(r.usage.size(), 2U);
    EXPECT_EQ(r.usage[0].to_string(),
              (dir / "lonc.ini").string() +
                  ":3: unknown setting 'request-timout'; did you mean 'request-timeout'?");
    EXPECT_EQ(r.usage[1].file, (dir / "lonc.ini").string());
    EXPECT_EQ(r.usage[1].line, 4);
    EXPECT_NE(r.usage[1].message.find("--max-queue"), std::string::npos) << r.usage[1].message;
}

TEST(Loader, OriginsSayWhereEachValueCameFrom) {
    test::TempDir dir("lonc-opt");
    dir.write("lonc.ini", "request-timeout = 5\npipeline = 2\n");
    const auto r = load_configuration(
        {"lonc", "--settings", (dir / "lonc.ini").string(), "--pipeline", "4", "-c", "/x/a.conf"},
        dir.path());
    EXPECT_EQ(r.opts.pipeline, 4U);
    EXPECT_EQ(r.opts.request_timeout, 5);
    EXPECT_EQ(r.origin.at("pipeline"), "command line");
    EXPECT_EQ(r.origin.at("config"), "command line");
    EXPECT_EQ(r.origin.at("request-timeout"), (dir / "lonc.ini").string());
    EXPECT_EQ(r.origin.at("max-queue"), "default");
}

TEST(Loader, CommandLineProblemsAndHelp) {
    const auto bad = load_configuration({"lonc", "--no-such-option"}, "/");
    EXPECT_EQ(bad.code(), exit_usage);
    ASSERT_EQ(bad.usage.size(), 1U);
    EXPECT_EQ(bad.usage[0].file, "command line");
    const auto help = load_configuration({"lonc", "--help"}, "/");
    EXPECT_EQ(help.code(), exit_ok);
    EXPECT_NE(help.info.find("--request-timeout"), std::string::npos);
    const auto relations =
        load_configuration({"lonc", "--retry-min", "9", "--retry-max", "1"}, "/");
    EXPECT_EQ(relations.code(), exit_usage);
}

TEST(Loader, ConfigPathIsTakenFromBase) {
    test::TempDir dir("lonc-opt");
    const auto r = load_configuration({"lonc", "-c", "access.conf"}, dir.path());
    EXPECT_EQ(r.opts.config, dir / "access.conf");
    EXPECT_EQ(r.code(), exit_config); // no such file: a configuration problem, not usage
    ASSERT_FALSE(r.problems().empty());
    EXPECT_NE(r.problems()[0].find((dir / "access.conf").string() + ": cannot read"),
              std::string::npos);
}

} // namespace
} // namespace lonc
