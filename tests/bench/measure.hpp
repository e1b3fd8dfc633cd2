// One measured run of lonc-bench: the shared load generator
// (tests/support/load.hpp) with a fixed request template, kept cheap so
// the clients cost little next to what they measure.
//
// Every request carries a token that no other request has; with a
// "{token}" in the request template, a reply is correct only if it is
// that token (echo) or starts with it and has the expected size
// (bytes:N:TOKEN). Anything else is counted: con_lost and error: replies
// as errors, any other reply as a crossed reply (somebody else's answer).
// Building a request allocates nothing.
#pragma once

#include <cstdint>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <vector>

#include "load.hpp"
#include "proc_stats.hpp"

namespace lonc::bench {

using test::Pattern;
using test::ProcSample;
using test::Target;

struct LoadSpec {
    Target target;
    Pattern pattern = Pattern::persistent;
    unsigned clients = 1;
    double warmup = 0.3;  // seconds before the measured window
    double seconds = 1.0; // the measured window
    // Request line without '\n'; "{token}" is replaced per request.
    std::string request = "echo:{token}";
    std::size_t reply_size = 0; // 0: the reply is the token; else its size
    // Crowd mode: stop once every client has this many correct replies
    // (0: run for warmup + seconds).
    unsigned requests_per_client = 0;
    double deadline = 120; // crowd mode: give up after this many seconds
    // Processes whose CPU and context switches are charged to this run.
    std::vector<pid_t> server;
    std::vector<pid_t> sim;
};

struct LoadResult {
    std::uint64_t requests = 0; // correct replies in the window
    std::uint64_t total = 0;    // replies of the whole run (warm-up too)
    double seconds = 0;         // the window's real length
    double rps = 0;
    double p50_us = 0, p99_us = 0, max_us = 0;
    std::uint64_t errors = 0;  // failed connects, EOF, con_lost, error:...
    std::uint64_t crossed = 0; // a reply that belongs to another request
    std::uint64_t connect_errors = 0;
    ProcSample server_before, server_after, sim_before, sim_after;
    std::uint64_t client_cpu_us = 0; // this process, over the window
    unsigned served_clients = 0;     // crowd mode: clients that got all replies
    std::string first_bad;           // the first wrong reply, for the report
};

// Runs the load; throws std::runtime_error if the target cannot be reached
// at all.
[[nodiscard]] LoadResult run_load(const LoadSpec& spec);

} // namespace lonc::bench
