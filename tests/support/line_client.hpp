// A blocking line client for tests: connect over TCP or a UNIX socket,
// send bytes, read '\n'-terminated lines with a timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lonc::test {

class LineClient {
public:
    // source_ip binds the local address (lond-sim identifies peers by it).
    static std::optional<LineClient> tcp(const std::string& ip, std::uint16_t port,
                                         const std::string& source_ip = {});
    static std::optional<LineClient> unix_socket(const std::string& path);

    LineClient() = default;
    ~LineClient();
    LineClient(LineClient&& other) noexcept;
    LineClient& operator=(LineClient&& other) noexcept;
    LineClient(const LineClient&) = delete;
    LineClient& operator=(const LineClient&) = delete;

    [[nodiscard]] int fd() const { return fd_; }
    // Writes all of data (blocking); false on error.
    bool send(std::string_view data);
    bool send_line(std::string_view line) { return send(std::string(line) + "\n"); }
    // Next line without '\n'; nullopt on timeout, EOF or error (see eof()).
    std::optional<std::string>
    read_line(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // send_line + read_line.
    std::optional<std::string>
    request(std::string_view line, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // True once the peer closed the connection (after a read saw EOF/reset).
    [[nodiscard]] bool eof() const { return eof_; }
    // Waits until the peer closes; true if it did within timeout (data read
    // meanwhile is kept for read_line).
    bool wait_closed(std::chrono::milliseconds timeout);
    void shutdown_write();
    void close();
    [[nodiscard]] const std::string& pending() const { return buf_; }

private:
    explicit LineClient(int fd) : fd_(fd) {}
    bool fill(std::chrono::milliseconds timeout);

    int fd_ = -1;
    std::string buf_;
    bool eof_ = false;
};

// A free TCP port on 127.0.0.1 (bound and released: good enough for tests).
std::uint16_t free_port();

// A /24 of the loopback network for one test, "127.A.B." with A,B chosen
// from the pid and a counter, so tests running in parallel do not meet.
std::string loopback_net();

} // namespace lonc::test
