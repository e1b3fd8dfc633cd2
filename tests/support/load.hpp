// The one load generator of the tests and the benchmark: one thread, one
// epoll set, many client connections to lonc (or a bare relay, or lond
// directly). It moves bytes and notices what happens on the wire; a
// Workload decides what each client sends next and judges each reply.
//
// lonc-bench drives it with a cheap, fixed request template (its clients
// must cost little next to what they measure); the integration tests drive
// it with a mixed workload (random sizes, encrypted requests, faults,
// changing concurrency). Both see the same transport events.
//
// Per request the engine costs one send and one recv (lonnet's pattern:
// plus socket, connect, epoll_ctl and close), a share of one epoll_wait
// and two clock reads; it allocates only when a line outgrows its buffer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lonc::test {

enum class Pattern {
    lonnet,     // connect, one line, read one line, close (as lonnet does)
    persistent, // one connection kept for request after request
};

[[nodiscard]] const char* to_string(Pattern p) noexcept;

// Where a client connects.
struct Target {
    std::string unix_path; // a UNIX socket (lonc, the bare relay), or else
    in_addr tcp_addr{};    // lond(-sim) directly: the handshake is done first
    std::uint16_t tcp_port = 0;
    std::optional<in_addr> source;
};

// One request, as a workload fills it in.
struct Request {
    std::size_t target = 0; // index into the engine's targets
    Pattern pattern = Pattern::persistent;
    std::string line;         // without '\n'
    bool close_after = false; // persistent: close the connection after the reply
};

// What became of a request.
enum class Event {
    reply,         // a line came back (Outcome::reply)
    no_socket,     // the connect failed: nothing was sent
    closed,        // the connection ended before the reply line
    closed_served, // ... a kept connection lonc had already served
    timeout,       // no reply within LoadLimits::reply_timeout
};

struct Outcome {
    Event event = Event::reply;
    std::string_view reply;       // the line without '\n' (Event::reply)
    bool trailing = false;        // bytes followed the line (never expected)
    std::uint64_t latency_us = 0; // from connect (lonnet) or send (persistent)
};

class Workload {
public:
    virtual ~Workload() = default;
    // Fills in client c's next request; false: c has nothing to send now
    // (asked again within a few milliseconds).
    virtual bool next(unsigned c, Request& r) = 0;
    // The outcome of client c's request r (r is as next() left it).
    virtual void done(unsigned c, const Request& r, const Outcome& o) = 0;
    // True: the run is over.
    [[nodiscard]] virtual bool finished() const { return false; }
    // Called about every 10 ms (and when the warm-up ends: see LoadLimits).
    virtual void tick() {}
};

struct LoadLimits {
    unsigned clients = 1;
    std::chrono::milliseconds duration{0};      // stop after this (0: when finished())
    std::chrono::milliseconds reply_timeout{0}; // 0: wait for ever
    const std::atomic<bool>* stop = nullptr;    // set: stop now
    // The first round of connects must not all fail (the target is there).
    bool require_target = false;
};

// Runs clients until the workload is finished, the duration has passed or
// *stop is set. Throws std::runtime_error if require_target and no client
// could connect in the first round.
void run_clients(const std::vector<Target>& targets, const LoadLimits& limits, Workload& w);

// A monotonic clock in nanoseconds (what the engine measures with).
[[nodiscard]] std::uint64_t now_ns() noexcept;

} // namespace lonc::test
