#include "lonc/runtime/net.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace lonc {

namespace {

// Socket files of one directory are put in place and removed under an
// exclusive flock(2) of the directory, so that a check of whose socket a
// path names and the unlink that follows never interleave with another
// process's rename. Held for a few system calls only.
class DirLock {
public:
    explicit DirLock(const std::filesystem::path& dir)
        : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
        if (fd_) {
            while (::flock(fd_.get(), LOCK_EX) != 0 && errno == EINTR) {
            }
        }
    }

private:
    UniqueFd fd_; // closing it unlocks
};

std::filesystem::path dir_of(const std::filesystem::path& path) {
    return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

// Whether path is a socket someone listens on (or may: only a refused
// connect says nobody does). A connect that succeeds is accepted there and
// closed at once.
bool someone_listens(const std::filesystem::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
        return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.native().size() >= sizeof addr.sun_path) {
        return true;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.native().size() + 1);
    const UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    return !fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 ||
           errno != ECONNREFUSED;
}

} // namespace

UniqueFd listen_unix(const std::filesystem::path& path, unsigned mode, int backlog,
                     SocketFile* placed, LiveSocket live) {
    // Bound and listening under a temporary name first, then renamed into
    // place: whoever sees the path can connect at once (lonnet takes the
    // socket file's existence to mean "link up").
    auto tmp = path;
    tmp.replace_filename("." + path.filename().string() + "." + std::to_string(::getpid()) +
                         ".new");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto& s = tmp.native();
    if (path.native().size() >= sizeof addr.sun_path || s.size() >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return UniqueFd{};
    }
    std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return fd;
    }
    if (::unlink(s.c_str()) != 0 && errno != ENOENT) {
        return UniqueFd{};
    }
    const mode_t old = ::umask(static_cast<mode_t>(~mode & 0777U));
    const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int saved = errno;
    ::umask(old);
    if (rc != 0) {
        errno = saved;
        return UniqueFd{};
    }
    const int saved_errno = errno;
    const DirLock lock(dir_of(path));
    errno = saved_errno;
    struct stat st {};
    if (live == LiveSocket::keep && someone_listens(path)) {
        ::unlink(s.c_str());
        errno = EADDRINUSE;
        return UniqueFd{};
    }
    if (::listen(fd.get(), backlog) != 0 || ::stat(s.c_str(), &st) != 0 ||
        ::rename(s.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::unlink(s.c_str());
        errno = e;
        return UniqueFd{};
    }
    if (placed != nullptr) {
        *placed = {st.st_dev, st.st_ino};
    }
    return fd;
}

bool unlink_if_ours(const std::filesystem::path& path, SocketFile ours) {
    const DirLock lock(dir_of(path));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || st.st_dev != ours.dev || st.st_ino != ours.ino) {
        return false;
    }
    return ::unlink(path.c_str()) == 0;
}

bool remove_dead_socket(const std::filesystem::path& path) {
    const DirLock lock(dir_of(path));
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || someone_listens(path)) {
        return false; // not a socket, or someone listens there: not ours to remove
    }
    return ::unlink(path.c_str()) == 0;
}

UniqueFd tcp_connect(in_addr dst, std::uint16_t port, std::optional<in_addr> src) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return fd;
    }
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (src) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr = *src;
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
            return UniqueFd{};
        }
    }
    sockaddr_in d{};
    d.sin_family = AF_INET;
    d.sin_addr = dst;
    d.sin_port = htons(port);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&d), sizeof d) != 0 &&
        errno != EINPROGRESS) {
        return UniqueFd{};
    }
    return fd;
}

int socket_error(int fd) noexcept {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return errno;
    }
    return err;
}

bool is_local_address(in_addr addr) noexcept {
    const UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        return false;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr = addr;
    return ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
}

std::string to_string(in_addr addr) {
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &addr, buf, sizeof buf);
    return buf;
}

std::uint64_t raise_fd_limit() noexcept {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
        ::getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

std::uint64_t fd_limit() noexcept {
    rlimit rl{};
    return ::getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 0;
}

std::size_t open_fd_count() noexcept {
    std::size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (const dirent* e = ::readdir(d)) {
            n += e->d_name[0] != '.' ? 1 : 0;
        }
        ::closedir(d);
        n -= n > 0 ? 1 : 0; // the directory's own descriptor
    }
    return n;
}

} // namespace lonc
