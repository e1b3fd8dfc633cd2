#include "lonc/runtime/net.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>

#include "line_client.hpp"
#include "temp_dir.hpp"

namespace lonc {
namespace {

using test::LineClient;
using test::TempDir;

TEST(ListenUnix, PathAppearsListeningWithItsModeAndNothingElseIsLeft) {
    TempDir dir("lonc-net-test");
    const auto path = dir / "h1";
    dir.write("h1", "a stale file where the socket goes");
    const auto fd = listen_unix(path, 0600, 16);
    ASSERT_TRUE(fd) << std::strerror(errno);
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777U, 0600U);
    // Connectable the moment it exists: no window between bind and listen.
    EXPECT_TRUE(LineClient::unix_socket(path.string()).has_value());
    // The temporary name it was bound under is gone.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) {
        ++entries;
    }
    EXPECT_EQ(entries, 1U);
}

TEST(ListenUnix, TooLongPathFailsWithENAMETOOLONG) {
    const std::filesystem::path path = "/tmp/" + std::string(200, 'x');
    const auto fd = listen_unix(path, 0600, 16);
    EXPECT_FALSE(fd);
    EXPECT_EQ(errno, ENAMETOOLONG);
}

} // namespace
} // namespace lonc
