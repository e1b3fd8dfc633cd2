// Sockets lonc uses: the UNIX listener clients connect to, non-blocking TCP
// connects to lond, and a few options. Every fd is CLOEXEC and non-blocking.
#pragma once

#include "lonc/core/fd.hpp"

#include <cstdint>
#include <filesystem>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <sys/types.h>

namespace lonc {

// The file a UNIX socket was bound to: whose socket a path names.
struct SocketFile {
    dev_t dev = 0;
    ino_t ino = 0;
};

// What listen_unix() does when path names a socket someone listens on.
enum class LiveSocket {
    replace, // put ours over it
    keep,    // leave it: fail with EADDRINUSE
};

// Replaces whatever is at path with a listening UNIX stream socket of the
// given mode (created under a matching umask, so it never exists with a
// wider one); with LiveSocket::keep, not a socket another process listens
// on. The path appears atomically, already listening; placed, when given,
// gets the file put there. Returns an invalid fd and sets errno on
// failure. Renames and removals in the directory take a lock on it (flock),
// so unlink_if_ours() and remove_dead_socket() cannot race with a rename,
// nor a rename with the check of whether someone listens.
[[nodiscard]] UniqueFd listen_unix(const std::filesystem::path& path, unsigned mode, int backlog,
                                   SocketFile* placed = nullptr,
                                   LiveSocket live = LiveSocket::replace);

// Removes path only if it still names ours (a successor may have put its
// own socket there). True if it was removed.
bool unlink_if_ours(const std::filesystem::path& path, SocketFile ours);

// Removes path only if it is a socket nobody listens on (a dead child's).
bool remove_dead_socket(const std::filesystem::path& path);

// Starts a non-blocking TCP connect (TCP_NODELAY, SO_KEEPALIVE set). src,
// when given, binds the source address first. errno is set on failure;
// EINPROGRESS is not a failure: wait for writability, then socket_error().
[[nodiscard]] UniqueFd tcp_connect(in_addr dst, std::uint16_t port, std::optional<in_addr> src);

// The pending error of a socket (SO_ERROR), 0 when none.
[[nodiscard]] int socket_error(int fd) noexcept;

// True when addr is an address of this machine (it can be bound).
[[nodiscard]] bool is_local_address(in_addr addr) noexcept;

[[nodiscard]] std::string to_string(in_addr addr);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
std::uint64_t raise_fd_limit() noexcept;
// The soft RLIMIT_NOFILE (0 when it cannot be read), and how many
// descriptors this process has open now.
[[nodiscard]] std::uint64_t fd_limit() noexcept;
[[nodiscard]] std::size_t open_fd_count() noexcept;

} // namespace lonc
