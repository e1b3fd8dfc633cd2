// Delivery of one host's delayed messages (lonSockDir/delayed/), inside
// that host's child.
//
// Oldest first (epoch as a number, then name), one message on the wire at a
// time, each queued behind the live requests already waiting, so a backlog
// shares the link fairly and keeps moving.
//
// A file is not opened until it has been unchanged for --spool-min-age
// seconds: lonnet writes it with a truncating open, reads it back 2 s later
// and logs F (failure) if it is gone. A younger file is looked at again when
// it comes of age (a timer).
//
// A file is delivered when lond answers with a non-empty line. Then, if the
// file still holds what was sent (same content and ctime), it is renamed to
// <name>.sent, the S:<host>:<cmd> line is appended to lonnet.perm.log, and
// the marker is removed; a process killed between those steps leaves a
// marker, and the next pass completes its record: exactly one S line per
// delivered file. A file rewritten meanwhile stays, and goes out later with
// its own S line. Once lond answered, this process never sends that version
// again: a rename, unlink or perm-log append that fails is retried (one
// CRITICAL line per failing step until it works again).
//
// A message on the wire when the link dies (not a timeout) is suspect: the
// next thing sent is a probe (ping). Only once lond answers something
// without it (the probe, or any other request) on a connection newer than
// the one that died does the death count against the message; if the
// probe's link dies too, lond fails whatever it gets (a sick peer) and
// nothing is blamed; a probe answered on an older connection clears the
// suspicion too (lond serves there: the message goes again). A counted
// message waits with its own backoff while the rest flows, and after
// --spool-max-attempts counted deaths it is set aside as <name>.bad. Once
// the peer has answered, with no link lost, for a tenth of
// --spool-bad-hold, a .bad file of the host set aside at least that hold
// ago is put back and tried again (logged once each time), at most
// bad_retries times (counted on the file: bad_retries_attr); one more
// counted death sets it aside again. A message lond does not answer within
// --request-timeout is not blamed (lond may just be slow) but waits too:
// T, 2T, 4T ... up to 10T (T the request timeout), so a message lond hangs
// on holds up the live requests behind it for a shrinking share of the
// time.
//
// A delivery whose file was gone or rewritten (no marker) and whose S line
// cannot be written yet leaves a <name>.sent marker holding the line sent,
// so a process that exits before the perm log takes it still gets it
// recorded by the next one.
//
// Only the process holding the host's lock file delivers
// (lonSockDir/.lonc-spool/<host>.lock); without it (held elsewhere, or the
// file cannot be opened) nothing goes out, and the next scan tries again.
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/core/options.hpp"
#include "lonc/core/spool.hpp"
#include "lonc/relay/request.hpp"
#include "lonc/runtime/event_loop.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lonc {

// A .bad file is put back at most this many times (the count is kept on
// the file, bad_retries_attr, where the filesystem allows).
inline constexpr unsigned bad_retries = 3;

struct SpoolStats {
    std::uint64_t delivered = 0;
    std::uint64_t refused = 0; // delivered, but lond said refused/rejected/error/unknown_cmd
    std::uint64_t bad = 0;     // set aside as <name>.bad
};

// The <name>.sent markers of hosts that are not in peers (removed from
// hosts.tab): no child settles them, so the supervisor does, under each
// host's lock (a host whose lock is held, by a draining child, is left for
// the next call). Exactly one S line per delivered file, as a child would.
// Returns how many were finished.
std::size_t finish_departed_records(const Settings& settings, const std::set<std::string>& peers,
                                    std::size_t max_line);

class Spooler {
public:
    // Hands the message to the worker's queue; it comes back through
    // done(), died() or timed_out().
    using Enqueue = std::function<void(RequestPtr)>;
    Spooler(EventLoop& loop, const Settings& settings, std::string host, const Options& opts,
            Enqueue enqueue);
    Spooler(const Spooler&) = delete;
    Spooler& operator=(const Spooler&) = delete;

    // The link is up: take the lock, finish interrupted records, scan, send.
    void start();
    // The link is down, or the child drains: send nothing new (a message on
    // the wire still completes through done() or died()).
    void stop();
    // This process takes over from another child of the same host (lonctl
    // upgrade), which holds the lock until it exits: waiting for it is
    // expected, not a warning.
    void expect_predecessor() noexcept { predecessor_ = true; }
    // A file appeared in delayed/ ("*": look at everything again).
    void hint(std::string_view name);
    // The message on the wire was answered (reply), or not (nullopt:
    // con_lost, never sent in time, link closed on purpose). Safe from
    // inside a link's teardown: nothing is sent before the loop's next turn.
    void done(RequestPtr req, std::optional<std::string_view> reply);
    // The link died while lond was on the message (why: the link's error;
    // conn: the connection's number, in the order they came up). Safe from
    // inside a teardown, like done().
    void died(RequestPtr req, std::string_view why, std::uint64_t conn = 0);
    // lond did not answer the message within --request-timeout (the link
    // is torn down): it waits, not blamed. Safe from inside a teardown.
    void timed_out(RequestPtr req);
    // lond answered a request (any, on any link) on connection conn: it
    // serves. A death on a message counts against the message if conn came
    // up after the connection it died on: an older one shows that lond
    // serves the connections it had, not that the message kills a new one
    // (--connections > 1, and only new connections are sick).
    void peer_answered(std::uint64_t conn = UINT64_MAX);
    // A link of the peer was lost or died before answering.
    void link_lost() noexcept { healthy_since_ = {}; }

    [[nodiscard]] std::size_t pending() const noexcept {
        return files_.size() + later_.size() + (inflight_.empty() ? 0 : 1);
    }
    // Epoch of the oldest message known to be waiting, 0 if none.
    [[nodiscard]] std::uint64_t oldest() const noexcept;
    [[nodiscard]] const SpoolStats& stats() const noexcept { return stats_; }

private:
    // A delivered message whose bookkeeping is not done yet.
    struct Answered {
        std::string name;
        std::string line;
        SpoolStamp stamp;       // the version that was sent
        bool file_done = false; // renamed away, or found gone or rewritten
        bool marked = false;    // <name>.sent is ours: removed once recorded
        bool recorded = false;  // the S line is written
    };
    enum class Claim { marked, left, failed };
    // A bookkeeping step of a delivered message that can fail and is
    // retried: one CRITICAL line when it starts failing, one INFO line when
    // it works again ("the <step> step works again").
    enum class Step : unsigned char { rename, unlink, perm };
    friend const char* to_string(Step step) noexcept;

    // A death proven to be the message's (peer_answered).
    void count_death(const std::string& name, const std::string& why);
    void send_probe();
    // Puts .bad files (names without .bad) back when their hold is over.
    void retry_set_aside(const std::vector<std::string>& bad);
    bool take_lock();
    void scan();
    void next();
    [[nodiscard]] double wait_for(const std::string& name, const SpoolStamp* opened);
    void later(const SpoolEntry& entry, double wait);
    void kick();
    void on_later();
    [[nodiscard]] bool held(const std::string& name) const;
    void settle_all();
    [[nodiscard]] bool settle(Answered& a);
    [[nodiscard]] Claim claim(const Answered& a);
    [[nodiscard]] bool leave_marker(const Answered& a);
    [[nodiscard]] bool holds(const std::filesystem::path& file, const std::string& line) const;
    [[nodiscard]] bool record(const std::string& line);
    void finish_record(const std::string& marker);
    bool set_aside(const std::string& name, const std::string& why, bool critical);
    void trouble(Step step, const std::string& text);
    void untrouble(Step step);
    [[nodiscard]] std::filesystem::path path(std::string_view name) const {
        return settings_.spool_dir() / std::string(name);
    }

    EventLoop& loop_;
    const Settings& settings_;
    std::string host_;
    const Options& opts_;
    Enqueue enqueue_;
    UniqueFd lock_;
    bool lock_warned_ = false;
    bool predecessor_ = false;
    bool active_ = false;
    std::set<SpoolEntry> files_; // to look at now
    // Young, or backing off after a link died on it: when to look again.
    std::map<SpoolEntry, EventLoop::TimePoint> later_;
    Timer later_timer_;
    // Versions seen too young, and since when (steady): a file with a time
    // in the future comes of age by this clock.
    std::map<std::string, std::pair<SpoolStamp, EventLoop::TimePoint>> seen_;
    struct Strikes {
        unsigned deaths = 0;
        unsigned timeouts = 0; // not counted as deaths
        EventLoop::TimePoint not_before{};
    };
    std::map<std::string, Strikes> strikes_; // messages the link died or timed out on
    // The message the last link died on, not blamed yet (see above).
    struct Suspect {
        std::string name;
        std::string why;
        std::uint64_t conn = 0; // the connection it died on: a newer one proves it
    };
    std::optional<Suspect> suspect_;
    bool probing_ = false;                    // the probe (ping) is out
    EventLoop::TimePoint healthy_since_{};    // lond answered, no link lost since; {}: not
    std::map<std::string, unsigned> retried_; // .bad files put back, and how often
    // By file name (two versions of one name may both be here).
    std::multimap<std::string, Answered> answered_;
    std::set<Step> troubles_;                      // failing steps already logged
    std::set<std::string> warned_;                 // names already warned about
    RequestPtr req_ = std::make_unique<Request>(); // the one message request; empty while it is out
    std::string inflight_;                         // the file the message out carries, "" if none
    SpoolStamp inflight_stamp_;
    Timer rescan_;
    SpoolStats stats_;
};

} // namespace lonc
