// Concurrent reachability probes: a TCP connect to ip:londPort within a
// timeout. A refused connection counts as "host up", as the original's
// Net::Ping did: the host answered.
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/runtime/event_loop.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lonc {

class Prober {
public:
    using Done = std::function<void(const std::string& id, bool reachable, const std::string& why)>;
    Prober(EventLoop& loop, std::uint16_t port, double timeout, Done done);
    ~Prober();
    Prober(const Prober&) = delete;
    Prober& operator=(const Prober&) = delete;

    // Starts a probe of peer unless one is running. done() is always called
    // later from the loop, never from inside probe().
    void probe(const Peer& peer);
    void cancel_all();
    // Drops id's probe, if any: its done() is never called.
    void cancel(const std::string& id);
    // londPort and the timeout for probes started from now on (a reload).
    void configure(std::uint16_t port, double timeout);
    [[nodiscard]] bool probing(const std::string& id) const { return probes_.count(id) != 0; }
    [[nodiscard]] std::size_t active() const noexcept { return probes_.size(); }

private:
    struct Probe;
    void finish(const std::string& id, bool reachable, const std::string& why);

    EventLoop& loop_;
    std::uint16_t port_;
    double timeout_;
    Done done_;
    std::map<std::string, std::unique_ptr<Probe>> probes_;
    std::vector<std::unique_ptr<Probe>> finished_; // destroyed from reaper_
    Timer reaper_;
};

} // namespace lonc
