// The log module: lonc.log's line format and level words, the journald
// priority prefixes on stderr, printable() and redact(), lonnet.perm.log,
// and sinks that cannot be written (a full disk costs lines, not the
// process).
#include "lonc/core/fd.hpp"
#include "lonc/runtime/log.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <regex>
#include <sstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

using test::slurp;

constexpr const char* stamp = R"(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})";

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

// The message part of each lonc.log line (after "]: "), which must be in
// the classic frame for role with the given status.
std::vector<std::string> messages(const std::string& text, const std::string& role,
                                  const std::string& status) {
    const std::regex frame(std::string("^") + stamp + " \\(" + std::to_string(::getpid()) +
                           "\\) \\[" + role + "\\] \\[" + stamp + ": " + status + "\\]: (.*)$");
    std::vector<std::string> out;
    for (const auto& line : lines_of(text)) {
        std::smatch m;
        EXPECT_TRUE(std::regex_match(line, m, frame)) << "not in the frame: " << line;
        out.push_back(m[1].str());
    }
    EXPECT_TRUE(text.empty() || text.back() == '\n') << "a torn last line";
    return out;
}

// Logging to a file of a scratch directory; no stderr.
class LogTest : public ::testing::Test {
protected:
    void SetUp() override {
        log::init({file(), "h1", spdlog::level::debug, false});
        log::set_status("Testing");
    }
    void TearDown() override { log::init({}); }
    [[nodiscard]] std::filesystem::path file() const { return dir_ / "lonc.log"; }
    [[nodiscard]] std::vector<std::string> logged() const {
        return messages(slurp(file()), "h1", "Testing");
    }

    test::TempDir dir_{"lonc-log-test"};
};

TEST_F(LogTest, EveryLineIsInTheClassicFrameWithTheOriginalsLevelWords) {
    auto& lg = log::get("unit");
    lg.debug("a debug line");
    lg.info("an information");
    lg.info("INFO: says so itself");
    lg.warn("a warning");
    lg.error("an error");
    lg.critical("a critical one");
    log::error_not_critical(lg, "a rejected {}", "reload");
    const std::vector<std::string> want = {
        "a debug line",
        "an information",
        "INFO: says so itself",
        "WARNING: a warning",
        "CRITICAL: an error",
        "CRITICAL: a critical one",
        "ERROR: a rejected reload",
    };
    EXPECT_EQ(logged(), want);
    EXPECT_TRUE(std::regex_match(log::last_log(),
                                 std::regex(std::string(stamp) + ": ERROR: a rejected reload")))
        << log::last_log();
    EXPECT_TRUE(std::regex_match(log::status(), std::regex(std::string(stamp) + ": Testing")))
        << log::status();
}

TEST_F(LogTest, ModulesShareTheFileAndTheLevel) {
    log::get("one").info("from one");
    log::get("two").info("from two");
    log::set_level(spdlog::level::warn);
    log::get("one").info("dropped");
    log::get("three").info("dropped too"); // a logger made after set_level
    log::get("two").warn("kept");
    log::set_level(spdlog::level::info);
    EXPECT_EQ(logged(), (std::vector<std::string>{"from one", "from two", "WARNING: kept"}));
}

TEST_F(LogTest, ARenamedFileIsFollowedAtTheNextLine) {
    auto& lg = log::get("unit");
    lg.info("before");
    std::filesystem::rename(file(), dir_ / "lonc.log.1");
    lg.info("after");
    EXPECT_EQ(messages(slurp(dir_ / "lonc.log.1"), "h1", "Testing"),
              std::vector<std::string>{"before"});
    EXPECT_EQ(logged(), std::vector<std::string>{"after"});
}

TEST_F(LogTest, AFullDiskCostsLinesNotTheProcessAndTheLossIsReported) {
    // lonc.log on a device that is always full, then a file again.
    auto& lg = log::get("unit");
    lg.info("first");
    std::filesystem::remove(file());
    std::filesystem::create_symlink("/dev/full", file());
    const auto lost = log::lost_lines();
    lg.info("lost one");
    lg.warn("lost two");
    EXPECT_EQ(log::lost_lines(), lost + 2);
    std::filesystem::remove(file()); // a new lonc.log: the next line reopens it
    lg.info("back");
    const auto got = logged();
    ASSERT_EQ(got.size(), 2U) << slurp(file());
    EXPECT_EQ(got[0], std::string("WARNING: 2 log lines lost (") + std::strerror(ENOSPC) + ")");
    EXPECT_EQ(got[1], "back");
}

TEST_F(LogTest, AnUnwritableDirectoryCostsLinesUntilItIsBack) {
    log::init({dir_ / "gone/lonc.log", "h1", spdlog::level::info, false});
    auto& lg = log::get("unit");
    const auto lost = log::lost_lines();
    lg.info("nowhere to go");
    EXPECT_EQ(log::lost_lines(), lost + 1);
    std::filesystem::create_directory(dir_ / "gone");
    lg.info("here");
    const auto got = messages(slurp(dir_ / "gone/lonc.log"), "h1", "Testing");
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(got[1], "here");
    EXPECT_TRUE(got[0].starts_with("WARNING: 1 log lines lost (")) << got[0];
}

// ---------------------------------------------------------------- stderr

// fd 2 pointed at a scratch file for the life of the object.
class StderrToFile {
public:
    explicit StderrToFile(const std::filesystem::path& file) : saved_(::dup(2)), file_(file) {
        const UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        EXPECT_TRUE(fd);
        EXPECT_EQ(::dup2(fd.get(), 2), 2);
    }
    ~StderrToFile() { ::dup2(saved_.get(), 2); }
    StderrToFile(const StderrToFile&) = delete;
    StderrToFile& operator=(const StderrToFile&) = delete;
    // JOURNAL_STREAM as systemd sets it for this file.
    [[nodiscard]] std::string journal_stream() const {
        struct stat st {};
        EXPECT_EQ(::stat(file_.c_str(), &st), 0);
        return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    }

private:
    UniqueFd saved_;
    std::filesystem::path file_;
};

// JOURNAL_STREAM set (or unset) for the life of the object.
class JournalStream {
public:
    explicit JournalStream(const std::string& value) {
        if (const char* old = std::getenv("JOURNAL_STREAM")) {
            old_ = old;
        }
        ::setenv("JOURNAL_STREAM", value.c_str(), 1);
    }
    ~JournalStream() {
        if (old_.empty()) {
            ::unsetenv("JOURNAL_STREAM");
        } else {
            ::setenv("JOURNAL_STREAM", old_.c_str(), 1);
        }
    }
    JournalStream(const JournalStream&) = delete;
    JournalStream& operator=(const JournalStream&) = delete;

private:
    std::string old_;
};

// One line of every kind, logged to stderr only.
void log_every_level() {
    log::init({{}, "PARENT", spdlog::level::trace, true});
    auto& lg = log::get("unit");
    lg.trace("trace");
    lg.debug("debug");
    lg.info("info");
    lg.warn("warn");
    lg.error("error");
    lg.critical("critical");
    log::error_not_critical(lg, "not critical");
    lg.info("two\nlines");
    log::init({});
}

TEST(LogStderr, OnTheJournalEachLineCarriesThePriorityOfItsLevelWord) {
    test::TempDir dir("lonc-log-test");
    const auto file = dir / "stderr";
    {
        const StderrToFile redirect(file);
        const JournalStream env(redirect.journal_stream());
        EXPECT_TRUE(log::stderr_is_journal());
        log_every_level();
    }
    EXPECT_EQ(slurp(file), "<7>[PARENT] trace\n"
                           "<7>[PARENT] debug\n"
                           "<6>[PARENT] info\n"
                           "<4>[PARENT] WARNING: warn\n"
                           "<2>[PARENT] CRITICAL: error\n"
                           "<2>[PARENT] CRITICAL: critical\n"
                           "<3>[PARENT] ERROR: not critical\n"
                           "<6>[PARENT] two\n"
                           "<6>lines\n");
}

TEST(LogStderr, AnotherFilesJournalStreamMeansNoPrefix) {
    test::TempDir dir("lonc-log-test");
    dir.write("other", "");
    const auto file = dir / "stderr";
    {
        const StderrToFile redirect(file);
        struct stat st {};
        ASSERT_EQ(::stat((dir / "other").c_str(), &st), 0);
        const JournalStream env(std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
        EXPECT_FALSE(log::stderr_is_journal());
        log_every_level();
    }
    EXPECT_EQ(slurp(file), "[PARENT] trace\n"
                           "[PARENT] debug\n"
                           "[PARENT] info\n"
                           "[PARENT] WARNING: warn\n"
                           "[PARENT] CRITICAL: error\n"
                           "[PARENT] CRITICAL: critical\n"
                           "[PARENT] ERROR: not critical\n"
                           "[PARENT] two\n"
                           "lines\n");
}

TEST(LogStderr, AMalformedJournalStreamIsNotTheJournal) {
    test::TempDir dir("lonc-log-test");
    const StderrToFile redirect(dir / "stderr");
    const auto good = redirect.journal_stream();
    const std::vector<std::string> bad = {
        good + "x", good.substr(0, good.find(':')), ":" + good, "", good + ":1", "x" + good};
    for (const auto& value : bad) {
        const JournalStream env(value);
        EXPECT_FALSE(log::stderr_is_journal()) << value;
    }
    const JournalStream env(good);
    EXPECT_TRUE(log::stderr_is_journal());
}

TEST(LogStderr, JournalPrefixesFollowTheSeverity) {
    EXPECT_EQ(log::journal_prefix(log::Severity::critical), "<2>");
    EXPECT_EQ(log::journal_prefix(log::Severity::error), "<3>");
    EXPECT_EQ(log::journal_prefix(log::Severity::warning), "<4>");
    EXPECT_EQ(log::journal_prefix(log::Severity::info), "<6>");
    EXPECT_EQ(log::journal_prefix(log::Severity::debug), "<7>");
    EXPECT_EQ(log::level_word(log::Severity::critical), "CRITICAL: ");
    EXPECT_EQ(log::level_word(log::Severity::error), "ERROR: ");
    EXPECT_EQ(log::level_word(log::Severity::warning), "WARNING: ");
    EXPECT_EQ(log::level_word(log::Severity::info), "");
    EXPECT_EQ(log::level_word(log::Severity::debug), "");
}

// ------------------------------------------------------- printable, redact

TEST(LogText, PrintableEscapesControlBytesNonAsciiAndBackslashes) {
    EXPECT_EQ(log::printable("plain text: 1+1=2"), "plain text: 1+1=2");
    EXPECT_EQ(log::printable(std::string("a\nb\rc\0d\x7f", 8)), "a\\x0ab\\x0dc\\x00d\\x7f");
    EXPECT_EQ(log::printable("caf\xc3\xa9"), "caf\\xc3\\xa9");
    EXPECT_EQ(log::printable("back\\slash"), "back\\\\slash");
    EXPECT_EQ(log::printable(""), "");
}

TEST(LogText, PrintableCutsAtMaxAndSaysHowLongTheTextWas) {
    EXPECT_EQ(log::printable(std::string(250, 'x')), std::string(200, 'x') + "...(250 bytes)");
    EXPECT_EQ(log::printable("abcdef", 3), "abc...(6 bytes)");
    EXPECT_EQ(log::printable("abc", 3), "abc");
}

TEST(LogText, RedactHidesEncryptPayloadsOnly) {
    EXPECT_EQ(log::redact("encrypt:passwd:msu:alice:secret"), "encrypt:<23 bytes>");
    EXPECT_EQ(log::redact("encrypt:"), "encrypt:<0 bytes>");
    EXPECT_EQ(log::redact("ping\n"), "ping\\x0a");
    EXPECT_EQ(log::redact("encryp"), "encryp");
}

// ----------------------------------------------------------- lonnet.perm.log

TEST(LogPerm, AppendsEpochMessageAndLocaltime) {
    test::TempDir dir("lonc-log-test");
    const auto file = dir / "lonnet.perm.log";
    dir.write("lonnet.perm.log", "1:D:h1:put:Thu Jan  1 00:00:01 1970\n");
    ASSERT_TRUE(log::perm(file, "S:h1:put"));
    const auto lines = lines_of(slurp(file));
    ASSERT_EQ(lines.size(), 2U);
    EXPECT_TRUE(std::regex_match(lines[1], std::regex(std::string(R"(\d+:S:h1:put:)") + stamp)))
        << lines[1];
}

TEST(LogPerm, AFullDiskFailsWithErrnoAndLeavesNoFragment) {
    test::TempDir dir("lonc-log-test");
    std::filesystem::create_symlink("/dev/full", dir / "full");
    errno = 0;
    EXPECT_FALSE(log::perm(dir / "full", "S:h1:put"));
    EXPECT_EQ(errno, ENOSPC);
    errno = 0;
    EXPECT_FALSE(log::perm(dir / "no-such-dir/lonnet.perm.log", "S:h1:put"));
    EXPECT_EQ(errno, ENOENT);

    // A disk that takes only the start of the line (a file size limit
    // stands in for it): what was written is blanked, so that no
    // "<epoch>:S:h1" fragment reads as a record.
    const auto file = dir / "lonnet.perm.log";
    dir.write("lonnet.perm.log", "1:D:h1:put:Thu Jan  1 00:00:01 1970\n");
    const auto before = std::filesystem::file_size(file);
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = before + 12;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    errno = 0;
    const bool ok = log::perm(file, "S:h1:" + std::string(100, 'p'));
    const int err = errno;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
    std::signal(SIGXFSZ, old_handler);
    EXPECT_FALSE(ok);
    EXPECT_EQ(err, ENOSPC);
    const auto text = slurp(file);
    ASSERT_EQ(text.size(), before + 12);
    EXPECT_EQ(text.substr(before), std::string(11, ' ') + "\n");
}

} // namespace
} // namespace lonc
