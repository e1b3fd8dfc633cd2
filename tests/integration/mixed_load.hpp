// The integration tests' load: the shared load generator
// (tests/support/load.hpp) with a mixed workload. Clients send requests
// with unique tokens through lonc and check every reply is their own.
// Concurrency changes at random while it runs; payload sizes are random
// (mostly small, some up to max_payload); each request uses lonnet's
// pattern (a connection per request) or a kept connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster.hpp"

namespace lonc::test {

struct LoadOptions {
    std::vector<int> hosts{1};         // peers to send to (chosen at random)
    std::uint64_t requests = 10000;    // in total
    unsigned max_concurrency = 32;     // clients; 1..this active at a time
    bool vary_concurrency = true;      // false: all of them, all the time
    std::size_t max_payload = 65536;   // echo payload bytes, log-uniform 0..this
    double encrypted_share = 0.1;      // encrypt:echo:...
    double eget_share = 0.05;          // put then eget (an enc: reply)
    double lonnet_share = 0.5;         // a new connection per request
    std::vector<std::string> faults{}; // fault commands mixed in (chaos)
    double fault_share = 0;
    std::chrono::milliseconds reply_timeout{30000}; // a request with no reply by then: lost
    std::chrono::milliseconds late_after{0};        // slower than this counts late (0: off)
    std::chrono::milliseconds duration{0};          // run this long instead of `requests`
    std::uint64_t seed = 0;                         // 0: random
    const std::atomic<bool>* stop = nullptr;        // set: stop now (with duration)
};

struct LoadResult {
    std::atomic<std::uint64_t> sent{0};      // requests written to lonc
    std::atomic<std::uint64_t> ok{0};        // its own reply, exactly
    std::atomic<std::uint64_t> con_lost{0};  // con_lost
    std::atomic<std::uint64_t> no_socket{0}; // connect failed (link down: no socket)
    std::atomic<std::uint64_t> closed{0};    // connection closed with no reply
    std::atomic<std::uint64_t> dropped{0};   // ... after lonc had served it (a bug)
    std::atomic<std::uint64_t> lost{0};      // no reply within reply_timeout
    std::atomic<std::uint64_t> crossed{0};   // another request's reply
    std::atomic<std::uint64_t> wrong{0};     // some other reply to an echo
    std::atomic<std::uint64_t> late{0};      // answered after late_after
    std::atomic<std::uint64_t> faults{0};    // fault commands sent
    std::atomic<std::int64_t> max_latency_us{0};
    std::mutex mutex;
    std::vector<std::string> samples;        // the first few problems, for messages
    std::vector<std::uint32_t> latencies_us; // every reply's (read once the run is over)

    [[nodiscard]] double percentile_ms(double q) const;

    void note(const std::string& what);
    [[nodiscard]] std::string summary() const;
};

// Runs the load against the cluster in the calling thread; on_progress (if
// set) is called about every 100 ms with the number sent so far.
void run_load(const Cluster& c, const LoadOptions& opts, LoadResult& result,
              const std::function<void(std::uint64_t answered)>& on_progress = {});

// Fails the test unless requests were answered and every one got its own
// reply: no con_lost, no missing socket, no closed or lost connection.
void expect_no_failed_request(const LoadResult& r);

// A well-behaved client that keeps sending requests (every 50 ms) while a
// test does something nasty, recording how long each took: others must
// stay unaffected. It always makes at least min_probes requests, even if
// stop() comes sooner (a fast attack must not leave too few to judge by).
class LatencyProbe {
public:
    // persistent: one connection for all requests (else one per request).
    LatencyProbe(const Cluster& c, int host, bool persistent = false);
    ~LatencyProbe(); // stops
    LatencyProbe(const LatencyProbe&) = delete;
    LatencyProbe& operator=(const LatencyProbe&) = delete;

    static constexpr std::size_t min_probes = 5;

    void stop();
    // Requests answered or failed so far (safe while it runs).
    [[nodiscard]] std::size_t count() const { return done_; }
    [[nodiscard]] std::size_t failures() const { return failures_; }
    [[nodiscard]] double max_ms() const;
    [[nodiscard]] double median_ms() const;
    [[nodiscard]] std::string summary() const;

private:
    const Cluster& c_;
    int host_;
    bool persistent_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> done_{0};
    std::vector<double> latencies_ms_;
    std::size_t failures_ = 0;
    std::string first_failure_;
    std::thread thread_;
};

// True when the test binary runs under AddressSanitizer.
[[nodiscard]] constexpr bool under_asan() {
#if defined(__SANITIZE_ADDRESS__)
    return true;
#else
    return false;
#endif
}

// LONC_TEST_FULL=1 asks for the full-size runs.
[[nodiscard]] bool full_size();

} // namespace lonc::test
