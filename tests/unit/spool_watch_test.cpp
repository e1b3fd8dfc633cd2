// The supervisor's watch on delayed/: real inotify on a temp dir.
#include "lonc/supervisor/spool_watch.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "temp_dir.hpp"

namespace lonc {
namespace {

using Hints = std::vector<std::pair<std::string, std::string>>;

// Runs the loop until hints has n entries (or 5 s).
bool pump(EventLoop& loop, const Hints& hints, std::size_t n) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (hints.size() < n && std::chrono::steady_clock::now() < until) {
        loop.run_once(std::chrono::milliseconds(20));
    }
    return hints.size() >= n;
}

TEST(SpoolWatch, NamesEachFinishedFileWithItsHost) {
    test::TempDir dir("lonc-spool-watch");
    EventLoop loop;
    Hints hints;
    SpoolWatch w(loop, dir.path(), [&](std::string_view host, std::string_view name) {
        hints.emplace_back(host, name);
    });
    ASSERT_TRUE(w.start());
    EXPECT_TRUE(w.watching());
    dir.write("notes.txt", "not a spool file\n");
    dir.write("100.abc.h1", "put:a\n");                        // written in place (close-write)
    dir.write(".tmp", "put:b\n");                              // written aside...
    std::filesystem::rename(dir / ".tmp", dir / "200.def.h2"); // ...and renamed in
    ASSERT_TRUE(pump(loop, hints, 2)) << hints.size();
    EXPECT_EQ(hints, (Hints{{"h1", "100.abc.h1"}, {"h2", "200.def.h2"}}));
}

TEST(SpoolWatch, AMissingDirectoryIsNoWatchAndNoCrash) {
    test::TempDir dir("lonc-spool-watch");
    EventLoop loop;
    SpoolWatch w(loop, dir / "gone", [](std::string_view, std::string_view) {});
    EXPECT_FALSE(w.start());
    EXPECT_FALSE(w.watching());
}

TEST(SpoolFilesOf, ListsPendingFilesOfTheHostsAskedForSorted) {
    test::TempDir dir("lonc-spool-watch");
    for (const char* f : {"300.a.h1", "100.b.h1", "200.c.h2", "150.d.h3", "120.e.h1.bad"}) {
        dir.write(f, "x\n");
    }
    const auto files = spool_files_of(dir.path(), {"h1", "h2"});
    ASSERT_EQ(files.size(), 2U);
    EXPECT_EQ(files.at("h1"), (std::vector<std::string>{"100.b.h1", "300.a.h1"}));
    EXPECT_EQ(files.at("h2"), (std::vector<std::string>{"200.c.h2"}));
}

} // namespace
} // namespace lonc
