// Delivery of one host's delayed messages (lonSockDir/delayed/), inside
// that host's child.
//
// Oldest first (epoch as a number, then name), one message on the wire at a
// time, each queued behind the live requests already waiting, so a backlog
// shares the link fairly and keeps moving. A file is delivered when lond
// answers with a non-empty line; then, in this order, it is renamed to
// <name>.sent, the S:<host>:<cmd> line is appended to lonnet.perm.log, and
// the marker is removed. A process killed between those steps leaves a
// marker, and the next delivery pass completes its record: exactly one S
// line per delivered file. Only the process holding the host's lock file
// delivers (lonSockDir/.lonc-spool/<host>.lock).
#pragma once

#include "lonc/config.hpp"
#include "lonc/event_loop.hpp"
#include "lonc/fd.hpp"
#include "lonc/options.hpp"
#include "lonc/request.hpp"
#include "lonc/spool.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace lonc {

struct SpoolStats {
    std::uint64_t delivered = 0;
    std::uint64_t refused = 0; // delivered, but lond said refused/rejected/error/unknown_cmd
    std::uint64_t bad = 0;     // set aside as <name>.bad
};

class Spooler {
public:
    using Enqueue = std::function<void(Request&)>;
    Spooler(EventLoop& loop, const Settings& settings, std::string host, const Options& opts,
            Enqueue enqueue);
    Spooler(const Spooler&) = delete;
    Spooler& operator=(const Spooler&) = delete;

    // The link is up: take the lock, finish interrupted records, scan, send.
    void start();
    // The link is down, or the child drains: send nothing new (a message on
    // the wire still completes through done()).
    void stop();
    // A file appeared in delayed/ ("*": look at everything again).
    void hint(std::string_view name);
    // The message on the wire was answered (reply), or not (nullopt:
    // con_lost, timeout).
    void done(std::optional<std::string_view> reply);

    [[nodiscard]] std::size_t pending() const noexcept {
        return files_.size() + (inflight_.empty() ? 0 : 1);
    }
    // Epoch of the oldest message known to be waiting, 0 if none.
    [[nodiscard]] std::uint64_t oldest() const noexcept;
    [[nodiscard]] const SpoolStats& stats() const noexcept { return stats_; }

private:
    bool take_lock();
    void scan();
    void next();
    void finish_record(const std::string& marker);
    bool set_aside(const std::string& name, const SpoolFile& file);
    [[nodiscard]] std::filesystem::path path(std::string_view name) const {
        return settings_.spool_dir() / std::string(name);
    }

    EventLoop& loop_;
    const Settings& settings_;
    std::string host_;
    const Options& opts_;
    Enqueue enqueue_;
    UniqueFd lock_;
    bool unlocked_ = false; // the lock file cannot be had at all: deliver anyway
    bool lock_warned_ = false;
    bool active_ = false;
    std::set<SpoolEntry> files_;
    Request req_;
    std::string inflight_; // the file req_ carries, "" if none
    Timer rescan_;
    SpoolStats stats_;
};

} // namespace lonc
