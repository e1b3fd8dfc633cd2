#include "lonc/runtime/net.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "line_client.hpp"
#include "temp_dir.hpp"

namespace lonc {
namespace {

using test::LineClient;
using test::TempDir;

ino_t inode_of(const std::filesystem::path& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Another process's socket at path, bound there directly; listening
// (until the fd closes) unless listening is false: then it is dead.
UniqueFd socket_at(const std::filesystem::path& path, bool listening = true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.string().copy(addr.sun_path, sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (listening) {
        EXPECT_EQ(::listen(fd.get(), 4), 0);
    }
    return fd;
}

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

TEST(ListenUnix, KeepLeavesALiveSocketAndReplacesADeadOne) {
    TempDir dir("lonc-net-test");
    const auto path = dir / "h1";
    auto other = socket_at(path);
    const auto theirs = inode_of(path);
    auto fd = listen_unix(path, 0600, 16, nullptr, LiveSocket::keep);
    EXPECT_FALSE(fd);
    EXPECT_EQ(errno, EADDRINUSE);
    EXPECT_EQ(inode_of(path), theirs);
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) {
        ++entries;
    }
    EXPECT_EQ(entries, 1U) << "the temporary name is left";
    other.reset(); // its process is gone: the socket is dead
    SocketFile placed;
    fd = listen_unix(path, 0600, 16, &placed, LiveSocket::keep);
    ASSERT_TRUE(fd) << std::strerror(errno);
    EXPECT_EQ(inode_of(path), placed.ino);
    // The default replaces even a live one (a successor's first listener).
    const auto replaced = placed.ino;
    fd = listen_unix(path, 0600, 16, &placed);
    ASSERT_TRUE(fd) << std::strerror(errno);
    EXPECT_NE(inode_of(path), replaced);
    EXPECT_TRUE(LineClient::unix_socket(path.string()).has_value());
}

TEST(UnlinkIfOurs, RemovesOnlyTheFileItWasGiven) {
    TempDir dir("lonc-net-test");
    const auto path = dir / "h1";
    SocketFile ours;
    auto fd = listen_unix(path, 0600, 16, &ours);
    ASSERT_TRUE(fd) << std::strerror(errno);
    EXPECT_EQ(ours.ino, inode_of(path));
    // A successor's socket now names the path: not ours to remove.
    std::filesystem::remove(path);
    const auto theirs = socket_at(path);
    const auto their_ino = inode_of(path);
    EXPECT_FALSE(unlink_if_ours(path, ours));
    EXPECT_EQ(inode_of(path), their_ino);
    EXPECT_TRUE(LineClient::unix_socket(path.string()).has_value());
    // Ours again (put back): removed.
    fd = listen_unix(path, 0600, 16, &ours);
    ASSERT_TRUE(fd) << std::strerror(errno);
    EXPECT_TRUE(unlink_if_ours(path, ours));
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(unlink_if_ours(path, ours)) << "nothing there";
}

TEST(RemoveDeadSocket, RemovesADeadSocketAndLeavesALiveOneOrAnotherFile) {
    TempDir dir("lonc-net-test");
    const auto dead = dir / "dead";
    (void)socket_at(dead); // closed at once: nobody listens
    ASSERT_TRUE(std::filesystem::exists(dead));
    EXPECT_TRUE(remove_dead_socket(dead));
    EXPECT_FALSE(std::filesystem::exists(dead));

    const auto bound = dir / "bound";
    const auto never_listened = socket_at(bound, false);
    EXPECT_TRUE(remove_dead_socket(bound)) << "bound but not listening: refused too";

    const auto live = dir / "live";
    const auto listener = socket_at(live);
    EXPECT_FALSE(remove_dead_socket(live));
    EXPECT_TRUE(LineClient::unix_socket(live.string()).has_value());

    dir.write("plain", "not a socket");
    EXPECT_FALSE(remove_dead_socket(dir / "plain"));
    EXPECT_TRUE(std::filesystem::exists(dir / "plain"));
    EXPECT_FALSE(remove_dead_socket(dir / "missing"));
}

} // namespace
} // namespace lonc
