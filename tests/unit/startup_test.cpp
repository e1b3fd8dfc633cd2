// Reading and judging lonc's configuration (startup.hpp): load_configuration
// over real files in a temp dir, and the --check-config verdicts lonctl
// upgrade's binary check relies on (0 clean, 5 what a start skips, 1
// refused), the report captured from the FILE* it writes to.
#include "lonc/supervisor/startup.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <pwd.h>
#include <string>
#include <unistd.h>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

// What a function printed to a FILE*, through an in-memory stream.
class Captured {
public:
    Captured() : out_(::open_memstream(&buf_, &size_)) {}
    ~Captured() {
        if (out_ != nullptr) {
            (void)std::fclose(out_);
        }
        std::free(buf_);
    }
    Captured(const Captured&) = delete;
    Captured& operator=(const Captured&) = delete;

    [[nodiscard]] std::FILE* file() const { return out_; }
    [[nodiscard]] std::string text() {
        (void)std::fflush(out_);
        return {buf_, size_};
    }

private:
    char* buf_ = nullptr;
    std::size_t size_ = 0;
    std::FILE* out_;
};

// The user running the test: the access checks are made as that user.
std::string me() {
    const passwd* pw = ::getpwuid(::geteuid());
    return pw != nullptr ? pw->pw_name : "root";
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

class StartupTest : public ::testing::Test {
protected:
    StartupTest() {
        for (const char* d : {"daemons/logs", "tabs", "sock", "html"}) {
            std::filesystem::create_directories(dir_ / d);
        }
        write_access_conf("");
        dir_.write("tabs/hosts.tab", "self:dom:library:self.example:127.0.0.1\n"
                                     "h1:dom:library:h1.example:127.0.0.2\n"
                                     "h2:dom:library:h2.example:127.0.0.3\n");
    }

    // access.conf with every key lonc needs but skip ("": none skipped).
    void write_access_conf(const std::string& skip) const {
        const std::vector<std::pair<std::string, std::string>> keys = {
            {"lonHostID", "self"},
            {"londPort", "5663"},
            {"lonDaemons", (dir_ / "daemons").string()},
            {"lonTabDir", (dir_ / "tabs").string()},
            {"lonSockDir", (dir_ / "sock").string()},
            {"lonDocRoot", (dir_ / "html").string()},
        };
        std::string text;
        for (const auto& [key, value] : keys) {
            if (key != skip) {
                text += "PerlSetVar " + key + " " + value + "\n";
            }
        }
        dir_.write("access.conf", text);
    }

    // lonc started in the temp dir with args after "-c access.conf -u <me>".
    [[nodiscard]] Loaded load(std::vector<std::string> args = {}) const {
        std::vector<std::string> argv = {"lonc", "-c", "access.conf", "-u", me()};
        argv.insert(argv.end(), args.begin(), args.end());
        return load_configuration(argv, dir_.path());
    }

    // lonc -t: the exit code, and what it printed into report_.
    int check(const Loaded& loaded) {
        Captured out;
        const int code = print_config_report(loaded.config, loaded.opts, out.file());
        report_ = out.text();
        return code;
    }

    test::TempDir dir_{"lonc-startup-test"};
    std::string report_;
};

// ------------------------------------------------------- --check-config

TEST_F(StartupTest, ACleanConfigurationIsOk) {
    const auto loaded = load();
    ASSERT_EQ(loaded.code(), exit_ok) << loaded.problems().front();
    EXPECT_TRUE(loaded.problems().empty());
    EXPECT_EQ(check(loaded), exit_ok) << report_;
    EXPECT_TRUE(has(report_, "host id:   self\n")) << report_;
    EXPECT_TRUE(has(report_, "londPort:  5663\n")) << report_;
    EXPECT_TRUE(has(report_, "peers:     3\n")) << report_;
    EXPECT_TRUE(has(report_, "(this host)")) << report_;
    EXPECT_TRUE(has(report_, "problems:  none\n")) << report_;
    EXPECT_FALSE(has(report_, "warnings:")) << report_;
    EXPECT_TRUE(has(report_, "\nconfiguration OK\n")) << report_;
}

// One unusable hosts.tab line: a start skips it and serves the rest, a
// reload would refuse the file (exit 5, lonctl upgrade's "passes with
// problems").
TEST_F(StartupTest, OneBadHostsTabLineAmongGoodOnesIsAProblemAStartSkips) {
    dir_.write("tabs/hosts.tab", "self:dom:library:self.example:127.0.0.1\n"
                                 "h1:broken\n"
                                 "h2:dom:library:h2.example:127.0.0.3\n");
    const auto loaded = load();
    EXPECT_EQ(loaded.code(), exit_ok) << "a start takes it";
    ASSERT_EQ(loaded.problems().size(), 1U);
    EXPECT_EQ(check(loaded), exit_config_problems) << report_;
    const auto line = (dir_ / "tabs/hosts.tab").string() + ":2: ";
    EXPECT_TRUE(has(report_, "problems:  1\n  " + line)) << report_;
    EXPECT_TRUE(has(report_, "h1:broken")) << report_;
    EXPECT_TRUE(has(report_, "peers:     2\n")) << report_;
    EXPECT_TRUE(has(report_, "configuration has problems lonc would skip at start\n")) << report_;
}

TEST_F(StartupTest, AMissingRequiredKeyIsRefused) {
    write_access_conf("lonSockDir");
    const auto loaded = load();
    EXPECT_EQ(loaded.code(), exit_config);
    ASSERT_FALSE(loaded.problems().empty());
    EXPECT_TRUE(has(loaded.problems().front(), "required key lonSockDir is missing"))
        << loaded.problems().front();
    EXPECT_EQ(check(loaded), exit_config) << report_;
    EXPECT_FALSE(has(report_, "host id:")) << "no settings to print";
    EXPECT_TRUE(has(report_, "required key lonSockDir is missing")) << report_;
    EXPECT_TRUE(has(report_, "\nconfiguration has problems\n")) << report_;
}

TEST_F(StartupTest, ThisHostMissingFromHostsTabIsRefused) {
    dir_.write("tabs/hosts.tab", "h1:dom:library:h1.example:127.0.0.2\n");
    const auto loaded = load();
    EXPECT_EQ(loaded.code(), exit_config);
    EXPECT_EQ(check(loaded), exit_config) << report_;
    EXPECT_TRUE(has(report_, "this host's id 'self' (lonHostID) has no entry")) << report_;
}

// Without its log or socket directory lonc cannot start: the access check
// (made as --user) makes that a problem, not a warning.
TEST_F(StartupTest, AMissingSocketDirectoryIsRefused) {
    std::filesystem::remove_all(dir_ / "sock");
    const auto loaded = load();
    EXPECT_EQ(loaded.code(), exit_ok) << "the files themselves are fine";
    EXPECT_EQ(check(loaded), exit_config) << report_;
    EXPECT_TRUE(has(report_, "socket directory " + (dir_ / "sock").string() + ": ")) << report_;
    EXPECT_TRUE(has(report_, "(as " + me() + ")")) << report_;
}

// The spool and status directories lonc makes itself: missing, with a
// parent it can write in, they are fine; with no parent, a warning only.
TEST_F(StartupTest, DirectoriesLoncMakesAreAtMostWarnings) {
    const auto clean = load();
    EXPECT_EQ(check(clean), exit_ok) << "delayed/ and lon-status/ do not exist yet";
    EXPECT_FALSE(has(report_, "warnings:")) << report_;
    std::filesystem::remove_all(dir_ / "html");
    EXPECT_EQ(check(load()), exit_ok) << report_;
    EXPECT_TRUE(has(report_, "warnings:  1\n  status directory ")) << report_;
    EXPECT_TRUE(has(report_, "problems:  none\n")) << report_;
}

TEST_F(StartupTest, AnUnreadableAccessConfIsRefused) {
    std::filesystem::remove(dir_ / "access.conf");
    const auto loaded = load();
    EXPECT_EQ(loaded.code(), exit_config);
    EXPECT_EQ(check(loaded), exit_config) << report_;
    EXPECT_TRUE(has(report_, (dir_ / "access.conf").string() + ": cannot read: ")) << report_;
}

// ------------------------------------------------- load_configuration

// Relative paths are taken from where lonc started (a reload finds the
// same files after lonc changed its directory).
TEST_F(StartupTest, RelativePathsAreTakenFromTheBase) {
    dir_.write("lonc.ini", "request-timeout = 42\n");
    const auto loaded = load({"--settings", "lonc.ini"});
    ASSERT_EQ(loaded.code(), exit_ok) << loaded.problems().front();
    EXPECT_EQ(loaded.opts.config, dir_ / "access.conf");
    EXPECT_EQ(loaded.opts.settings_file, dir_ / "lonc.ini");
    EXPECT_EQ(loaded.opts.request_timeout, 42);
}

TEST_F(StartupTest, AMisspeltSettingIsNamedWithItsLine) {
    dir_.write("lonc.ini", "request-timeout = 42\nrequest-timeuot = 5\n");
    const auto loaded = load({"--settings", "lonc.ini"});
    EXPECT_EQ(loaded.code(), exit_usage);
    ASSERT_EQ(loaded.usage.size(), 1U);
    EXPECT_EQ(loaded.usage.front().line, 2);
    EXPECT_TRUE(has(loaded.problems().front(), "did you mean 'request-timeout'?"))
        << loaded.problems().front();
}

TEST_F(StartupTest, ABadCommandLineIsAUsageError) {
    const auto loaded = load({"--request-timeout", "-3"});
    EXPECT_EQ(loaded.code(), exit_usage);
    ASSERT_FALSE(loaded.problems().empty());
    EXPECT_FALSE(loaded.config.ok()) << "nothing loaded";
    EXPECT_TRUE(has(loaded.problems().front(), "request-timeout")) << loaded.problems().front();
}

TEST_F(StartupTest, HelpIsInformationNotAProblem) {
    const auto loaded = load({"--help"});
    EXPECT_EQ(loaded.code(), exit_ok);
    EXPECT_TRUE(has(loaded.info, "--check-config")) << loaded.info;
    // A reload refuses a command line that only asks for help.
    ASSERT_EQ(loaded.problems().size(), 1U);
    EXPECT_TRUE(has(loaded.problems().front(), "--help")) << loaded.problems().front();
}

// -T: every setting, and where its value came from.
TEST_F(StartupTest, PrintSettingsSaysWhereEachValueCameFrom) {
    dir_.write("lonc.ini", "request-timeout = 42\nretry-max = 90\n");
    const auto loaded = load({"--settings", "lonc.ini", "--retry-max", "120"});
    ASSERT_EQ(loaded.code(), exit_ok) << loaded.problems().front();
    Captured out;
    print_settings(loaded, out.file());
    const auto text = out.text();
    const auto ini = (dir_ / "lonc.ini").string();
    EXPECT_TRUE(has(text, "# settings file: " + ini + "\n")) << text;
    EXPECT_TRUE(has(text, "\nrequest-timeout = 42  # " + ini + "\n")) << text;
    EXPECT_TRUE(has(text, "\nretry-max = 120  # command line\n")) << "the command line wins\n"
                                                                  << text;
    EXPECT_TRUE(has(text, "\nretry-min = ")) << text;
    EXPECT_TRUE(has(text, "\nuser = " + me() + "  # command line\n")) << text;
    EXPECT_TRUE(has(text, "\nrequeue-grace = ")) << text;
    const auto at = text.find("\nrequeue-grace = ");
    EXPECT_TRUE(text.substr(at, text.find('\n', at + 1) - at).ends_with("  # default")) << text;
}

TEST_F(StartupTest, PrintSettingsWithoutASettingsFileSaysNone) {
    if (std::filesystem::exists(default_settings_file)) {
        GTEST_SKIP() << default_settings_file << " exists: lonc reads it by default";
    }
    const auto loaded = load();
    Captured out;
    print_settings(loaded, out.file());
    const auto text = out.text();
    EXPECT_TRUE(text.starts_with("# settings file: none\n")) << text;
    EXPECT_FALSE(has(text, "lonc.ini")) << text;
}

} // namespace
} // namespace lonc
