#include "line_client.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <utility>

namespace lonc::test {

std::optional<LineClient> LineClient::tcp(const std::string& ip, std::uint16_t port,
                                          const std::string& source_ip) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return std::nullopt;
    }
    LineClient c(fd);
    if (!source_ip.empty()) {
        sockaddr_in src{};
        src.sin_family = AF_INET;
        if (::inet_pton(AF_INET, source_ip.c_str(), &src.sin_addr) != 1 ||
            ::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
            return std::nullopt;
        }
    }
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(port);
    if (::inet_pton(AF_INET, ip.c_str(), &dst.sin_addr) != 1 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
        return std::nullopt;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

std::optional<LineClient> LineClient::unix_socket(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        return std::nullopt;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return std::nullopt;
    }
    LineClient c(fd);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return std::nullopt;
    }
    return c;
}

LineClient::~LineClient() {
    close();
}

LineClient::LineClient(LineClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buf_(std::move(other.buf_)), eof_(other.eof_) {}

LineClient& LineClient::operator=(LineClient&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        buf_ = std::move(other.buf_);
        eof_ = other.eof_;
    }
    return *this;
}

void LineClient::close() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

void LineClient::shutdown_write() {
    if (fd_ >= 0) {
        ::shutdown(fd_, SHUT_WR);
    }
}

bool LineClient::send(std::string_view data) {
    while (!data.empty()) {
        const auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool LineClient::fill(std::chrono::milliseconds timeout) {
    if (fd_ < 0 || eof_) {
        return false;
    }
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    if (r <= 0) {
        return false;
    }
    char chunk[65536];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
        eof_ = true;
        return false;
    }
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
}

std::optional<std::string> LineClient::read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
            auto line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !fill(left)) {
            if (!eof_ && std::chrono::steady_clock::now() < deadline) {
                continue; // poll interrupted
            }
            return std::nullopt;
        }
    }
}

std::optional<std::string> LineClient::request(std::string_view line,
                                               std::chrono::milliseconds timeout) {
    if (!send_line(line)) {
        return std::nullopt;
    }
    return read_line(timeout);
}

bool LineClient::wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        fill(left);
    }
    return true;
}

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

std::string loopback_net() {
    static std::atomic<unsigned> counter{0};
    const unsigned v = (static_cast<unsigned>(::getpid()) * 131U + counter++ * 7919U) % 60000U;
    // 127.1.0.0 - 127.235.255.255: avoid 127.0.0.x, which humans use by hand.
    return "127." + std::to_string(1 + v / 256) + "." + std::to_string(v % 256) + ".";
}

} // namespace lonc::test
