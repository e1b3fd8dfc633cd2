#include "lonc/core/spool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <thread>
#include <tuple>
#include <unistd.h>

#include "temp_dir.hpp"

namespace lonc {
namespace {

TEST(SpoolName, HostIsEverythingAfterTheSecondDot) {
    const auto n = parse_spool_name("1700000000.putmsuuser.lon_capa.edu");
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(n->epoch, 1700000000U);
    EXPECT_EQ(n->middle, "putmsuuser");
    EXPECT_EQ(n->host, "lon_capa.edu");
    const auto empty_middle = parse_spool_name("5..h1");
    ASSERT_TRUE(empty_middle.has_value());
    EXPECT_EQ(empty_middle->host, "h1");
}

TEST(SpoolName, OtherFilesAreNotSpoolEntries) {
    for (const char* name :
         {"", ".", "..", "lock", "123", "123.abc", ".tmp-1.a.h1", "x1.a.h1", "12a.b.h1", "1.a.",
          "1.a.h1.bad", "1.a.h1.sent", "1.a.../x", "1.a.h 1", "99999999999999999999999.a.h1"}) {
        EXPECT_FALSE(parse_spool_name(name).has_value()) << name;
    }
}

TEST(SpoolName, NamesWithASlashOrNulAreNeverSpoolEntries) {
    // A spool entry's name becomes a path below delayed/: it must be one
    // file name (found by the spool fuzzer: a '/' passed in <middle>).
    for (const std::string& name : {std::string("1.a/b.h1"), std::string("1./.h1"),
                                    std::string("1/2.a.h1"), std::string("1.a\0b.h1", 8)}) {
        EXPECT_FALSE(parse_spool_name(name).has_value()) << name;
    }
}

TEST(SpoolList, EveryKindOfEntryWithItsHostAndNothingElse) {
    test::TempDir d("lonc-spool-test");
    for (const char* name : {"100.b.h1", "20.a.h1.bad", "30.a.h1.sent", "5.a.lon.h1", "7.tmp",
                             "8.x", "1.a.h1.bad.bad", ".lonc-spool", "x.a.h1"}) {
        d.write(name, "x\n");
    }
    auto entries = list_spool(d.path());
    ASSERT_TRUE(entries);
    std::sort(entries->begin(), entries->end());
    std::vector<std::tuple<std::string, std::string, std::string, SpoolKind>> got;
    for (const auto& e : *entries) {
        got.emplace_back(e.name, std::string(e.base()), e.host, e.kind);
    }
    EXPECT_EQ(got, (std::vector<std::tuple<std::string, std::string, std::string, SpoolKind>>{
                       {"5.a.lon.h1", "5.a.lon.h1", "lon.h1", SpoolKind::pending},
                       {"20.a.h1.bad", "20.a.h1", "h1", SpoolKind::bad},
                       {"30.a.h1.sent", "30.a.h1", "h1", SpoolKind::sent},
                       {"100.b.h1", "100.b.h1", "h1", SpoolKind::pending}}));
    EXPECT_FALSE(list_spool(d.path() / "missing"));
    EXPECT_EQ(errno, ENOENT);
}

TEST(SpoolList, OldestEpochFirstNumericallyThenName) {
    std::vector<SpoolEntry> v;
    for (const char* name : {"100.b.h1", "20.a.h1", "100.a.h1", "1000.a.h1"}) {
        v.push_back(*spool_entry(name));
    }
    std::sort(v.begin(), v.end());
    std::vector<std::string> names;
    for (const auto& f : v) {
        names.push_back(f.name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"20.a.h1", "100.a.h1", "100.b.h1", "1000.a.h1"}));
}

TEST(SpoolBytes, Classification) {
    std::string line;
    EXPECT_EQ(parse_spool_bytes("put:a:b\nrest", false, 100, line), SpoolRead::ok);
    EXPECT_EQ(line, "put:a:b");
    EXPECT_EQ(parse_spool_bytes("", true, 100, line), SpoolRead::empty);
    EXPECT_EQ(parse_spool_bytes("half-written", true, 100, line), SpoolRead::no_newline);
    EXPECT_EQ(parse_spool_bytes(std::string(101, 'x'), false, 100, line), SpoolRead::too_long);
    EXPECT_EQ(parse_spool_bytes(std::string(101, 'x') + "\n", false, 100, line),
              SpoolRead::too_long);
    EXPECT_EQ(parse_spool_bytes(std::string(100, 'x') + "\n", false, 100, line), SpoolRead::ok);
    EXPECT_EQ(parse_spool_bytes("\n", true, 100, line), SpoolRead::ok);
    EXPECT_EQ(line, "");
}

TEST(SpoolFile, ReadsOnlyTheFirstLineAndReportsMissing) {
    test::TempDir d("lonc-spool-test");
    d.write("1.a.h1", "encrypt:put:x\nsecond line\n");
    const auto f = read_spool_file(d / "1.a.h1", 1000);
    EXPECT_EQ(f.result, SpoolRead::ok);
    EXPECT_EQ(f.line, "encrypt:put:x");
    EXPECT_GT(f.mtime, 0);
    EXPECT_EQ(read_spool_file(d / "2.a.h1", 1000).result, SpoolRead::missing);
    d.write("3.a.h1", std::string(5000, 'y'));
    EXPECT_EQ(read_spool_file(d / "3.a.h1", 1000).result, SpoolRead::too_long);
    EXPECT_EQ(read_spool_file(d.path(), 1000).result, SpoolRead::unreadable); // a directory
}

TEST(SpoolAge, NewestOfMtimeAndCtimeAndTheFutureCountsAsNow) {
    SpoolStamp s;
    s.mtime = {100, 0};
    s.ctime = {90, 0};
    EXPECT_DOUBLE_EQ(spool_age(s, {105, 500000000}), 5.5);
    s.ctime = {103, 0}; // renamed in later than written
    EXPECT_DOUBLE_EQ(spool_age(s, {105, 0}), 2.0);
    s.mtime = {200, 0}; // a clock ahead of ours
    EXPECT_DOUBLE_EQ(spool_age(s, {105, 0}), 0.0);
}

TEST(SpoolStamp, ARewriteChangesItARenameOnlyItsCtime) {
    test::TempDir d("lonc-spool-test");
    d.write("1.a.h1", "put:x\n");
    const auto before = read_spool_file(d / "1.a.h1", 100).stamp;
    std::filesystem::rename(d / "1.a.h1", d / "1.a.h1.sent");
    const auto renamed = read_spool_file(d / "1.a.h1.sent", 100).stamp;
    EXPECT_TRUE(renamed.same_content(before));
    // lonnet's truncating rewrite (another size: file times are coarse)
    d.write("1.a.h1.sent", "put:yy\n");
    const auto rewritten = read_spool_file(d / "1.a.h1.sent", 100).stamp;
    EXPECT_FALSE(rewritten == before);
}

// lonnet rewrites a name with a truncating open. A rewrite between the
// stamp and the read must not pair the new bytes with the old stamp (the
// spooler would then take the old version's stamp as proof of what it sent):
// every line read is either flagged changed or of the stamp's size.
TEST(SpoolFile, ARewriteDuringTheReadIsFlaggedNotPairedWithTheOldStamp) {
    test::TempDir d("lonc-spool-test");
    const auto file = d / "1.a.h1";
    const std::string versions[2] = {"put:v1\n", "put:a-longer-second-version\n"};
    d.write("1.a.h1", versions[0]);
    std::atomic<bool> stop{false};
    std::thread lonnet([&] {
        for (unsigned i = 1; !stop; ++i) {
            const int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
            if (fd >= 0) {
                const auto& v = versions[i % 2];
                (void)!::write(fd, v.data(), v.size());
                ::close(fd);
            }
        }
    });
    long ok = 0;
    long flagged = 0;
    long mismatched = 0; // what the read would have been without the check
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2)) {
        const auto f = read_spool_file(file, 100);
        if (f.result != SpoolRead::ok) {
            continue;
        }
        ++ok;
        const bool pairs = static_cast<off_t>(f.line.size() + 1) == f.stamp.size;
        mismatched += pairs ? 0 : 1;
        if (f.changed) {
            ++flagged;
            continue;
        }
        EXPECT_TRUE(pairs) << "line '" << f.line << "' read under a stamp of " << f.stamp.size
                           << " bytes";
    }
    stop = true;
    lonnet.join();
    std::printf("%ld lines read, %ld flagged as changed, %ld of them with another version's "
                "stamp\n",
                ok, flagged, mismatched);
    EXPECT_GT(ok, 0);
}

} // namespace
} // namespace lonc
