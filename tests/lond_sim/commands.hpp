// lond-sim's protocol: the handshake, the link key, and the commands a
// session answers. No I/O here: a Session turns one received line into
// reply bytes plus an instruction for the connection (keep going, close,
// stop reading, sleep first), so server.cpp owns sockets and time.
#pragma once

#include "lonc/core/cipher.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

namespace lond_sim {

// Largest reply "bytes:N" produces.
inline constexpr std::size_t max_bytes_reply = std::size_t{256} << 20U;

// put/get storage of one listener identity, shared by its connections.
class Store {
public:
    void put(std::string key, std::string value);
    // Appends the value of key (nothing when missing) to out.
    void get(const std::string& key, std::string& out) const;

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::string> map_;
};

// One lond this process pretends to be.
struct Identity {
    std::string id;
    Store store;
};

// The --log file: one line per received request, written with a single
// write(2) under a lock, so lines of concurrent connections never mix and a
// test can read the file while lond-sim runs.
class RequestLog {
public:
    // times: each line starts with "<CLOCK_MONOTONIC in µs>\t" (--log-times).
    explicit RequestLog(int fd, bool times = false) : fd_(fd), times_(times) {}
    // "<client_id>\t<raw>\t<plain>\n"
    void write(std::string_view client_id, std::string_view raw, std::string_view plain);

private:
    std::mutex mutex_;
    int fd_;
    bool times_;
};

// Settings every session shares.
struct SessionConfig {
    std::optional<std::string> buildkey; // --buildkey; else random per ekey
    bool refuse_handshake = false;
    bool drop_requests = false; // close on every request after ekey (a sick lond)
    RequestLog* log = nullptr;  // --log, or none
};

// What the connection does after a line was handled (the reply, if any, is
// already appended to the output).
struct Step {
    enum class Next {
        keep,         // read on
        close,        // send what is pending, then close
        reset,        // send what is pending, then close with a TCP reset
        stop_reading, // send what is pending, then never read or write again
    };
    Next next = Next::keep;
    bool answered = false; // a request after the handshake got a reply (--exit-after)
    // sleep:MS: send what was pending before this reply, wait, then go on.
    std::chrono::milliseconds delay{0};
};

class Session {
public:
    Session(Identity& self, std::string client_id, const SessionConfig& config);

    // Handles one line (without its '\n'); appends the reply line(s) to out.
    Step on_line(std::string_view line, std::string& out);

    [[nodiscard]] bool handshake_done() const { return state_ == State::ready; }

private:
    enum class State { want_init, want_echo, ready };

    Step dispatch(std::string_view cmd, bool encrypted, std::string& out);
    std::string make_buildkey();

    Identity& self_;
    std::string client_id_;
    const SessionConfig& config_;
    State state_ = State::want_init;
    std::string challenge_;
    std::optional<lonc::LinkCipher> cipher_;
    std::minstd_rand rng_;
    std::string plain_; // scratch: the decrypted request
};

// The deterministic pattern of "bytes:N": byte i is pattern[i % 62].
inline constexpr std::string_view bytes_pattern =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

} // namespace lond_sim
