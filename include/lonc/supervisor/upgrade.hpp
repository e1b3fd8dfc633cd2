// lonctl upgrade: what a supervisor hands to the binary it re-executes.
//
// The supervisor checks the new binary (`lonc -t` with its own command line,
// in a forked child), then execve()s the path it was started from, keeping
// its pid. Across the exec it keeps open, and names in the environment
// variable LONC_UPGRADE: the pid file (its lock stays held), the lonctl
// connection waiting for the outcome, and each running child's end of the
// socketpair. The new supervisor adopts those children and replaces them,
// peer by peer, with children of its own (see docs/design.md, "Upgrade").
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/core/options.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/supervisor/startup.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace lonc {

inline constexpr const char* handover_env = "LONC_UPGRADE";

struct HandoverChild {
    std::string id; // host id
    pid_t pid = 0;
    int fd = -1; // the supervisor's end of its socketpair
    bool link_up = false;
};

struct Handover {
    int pid_file_fd = -1;
    int waiter_fd = -1;          // the waiting lonctl's connection (-1: none)
    int config_fd = -1;          // a memfd holding a ConfigSnapshot (-1: none)
    std::string from_version;    // the version that executed us
    std::int64_t started_ms = 0; // wall clock, ms: when the upgrade was asked for
    std::vector<HandoverChild> children;

    // One line of space-separated fields: "v1 pidfile=3 waiter=9 config=10
    // from=0.1.0 started=1700000000000 child=ID/PID/FD/UP ...".
    [[nodiscard]] std::string encode() const;
    [[nodiscard]] static std::optional<Handover> decode(std::string_view text, std::string& error);
    // Every descriptor it names, ascending.
    [[nodiscard]] std::vector<int> fds() const;
};

// The configuration a supervisor runs with, as it was read: an upgrade
// changes the binary only, so the new supervisor runs with this, not with
// the files as they are now (edits not reloaded wait for the next reload).
struct ConfigSnapshot {
    std::string options;     // every option, "name = value" lines
    std::string access_conf; // the text access.conf had
    std::string hosts_tab;   // hosts.tab's

    [[nodiscard]] static ConfigSnapshot of(const Options& opts, const Config& cfg);
    [[nodiscard]] std::string encode() const;
    [[nodiscard]] static std::optional<ConfigSnapshot> decode(std::string_view text);
    // loaded (the command line read again) gets these options and this
    // configuration; false and error if they cannot be taken.
    bool apply(Loaded& loaded, std::string& error) const;
};

// Writes the snapshot to a new memfd (inherited across exec); -1 on error.
[[nodiscard]] int snapshot_fd(const ConfigSnapshot& snapshot);
// Reads one back (and closes fd).
[[nodiscard]] std::optional<ConfigSnapshot> read_snapshot(int fd);

// The other end of exec_handover, in main(): what a re-executed
// supervisor takes from the one that executed it.
struct Arrival {
    bool upgrading = false;           // LONC_UPGRADE was set
    std::optional<Handover> handover; // ... and could be read
    // What could not be taken, each a line for the log once it is open.
    std::vector<std::string> problems;

    // Reads LONC_UPGRADE and unsets it (not for our children, nor the next
    // check); the descriptors it names become close-on-exec.
    [[nodiscard]] static Arrival from_environment();
    // Closes every descriptor from 3 up but those the hand-over names: a
    // stray one inherited from whoever started us could hold a lock of ours.
    void close_the_rest() const;
    // Gives loaded the configuration the old supervisor ran with, not the
    // files as they are now (edits not reloaded wait for the next reload).
    void take_configuration(Loaded& loaded);
};

// Executes exe with argv (argv[0] included; empty: exe alone), keeping
// the descriptors h names open across the exec and naming them in
// LONC_UPGRADE. Returns only if the exec failed: why, with everything put
// back as it was.
[[nodiscard]] std::string exec_handover(const std::string& exe, std::vector<std::string> argv,
                                        const Handover& h);

// The new supervisor's progress through the adopted peers: handed over
// `window` at a time, in order; once one has failed no further peer is
// started (its peer, and those not reached, keep their old children).
class HandoverQueue {
public:
    HandoverQueue(std::vector<std::string> peers, std::size_t window);

    // The next peer to hand over now (counted under way), if any.
    [[nodiscard]] std::optional<std::string> next();
    // The peer next() gave had nothing to hand over (its old child died
    // meanwhile; what runs now is new): counted handed over, not under way.
    void nothing_to_do();
    // A hand-over under way finished, or failed (what: "id: why").
    void handed();
    void failed(std::string what);
    // Nothing under way, and nothing more will start.
    [[nodiscard]] bool finished() const noexcept;
    [[nodiscard]] bool ok() const noexcept { return failed_.empty(); }
    // "lonc FROM -> TO: H of N peers handed over in S s[; K peers kept the
    // old child: ...]".
    [[nodiscard]] std::string outcome(std::string_view from, std::string_view to,
                                      double seconds) const;

private:
    std::vector<std::string> peers_;
    std::size_t window_;
    std::size_t taken_ = 0;  // peers_[0, taken_) given out by next()
    std::size_t active_ = 0; // under way
    std::size_t handed_ = 0;
    std::vector<std::string> failed_;
};

// How the new binary judged the configuration: as a start would (`-t`
// exit 0, or exit_config_problems: it starts, skipping what it reports),
// or not at all.
enum class CheckVerdict { passed, passed_with_problems, failed };

// Runs `exe -t ARGS...` (args without argv[0]) as a child, through the
// event loop: the supervisor goes on reaping, restarting and answering
// while the check runs (at most timeout_s; then the check is killed). done
// is called once, from the loop, with the verdict and what it printed (and
// how it ended, when it failed). The check reaps its own child; an owner
// whose reaper (waitpid(-1)) takes the status first hands it to exited().
// Destroying a check that is still running kills it.
class BinaryCheck final : public EventLoop::Watcher {
public:
    using Done = std::function<void(CheckVerdict verdict, std::string output)>;
    BinaryCheck(EventLoop& loop, std::string exe, const std::vector<std::string>& args,
                double timeout_s, Done done);
    ~BinaryCheck();
    BinaryCheck(const BinaryCheck&) = delete;
    BinaryCheck& operator=(const BinaryCheck&) = delete;

    // The check's pid (0 once it is reaped, or if it could not start).
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] bool finished() const noexcept { return finished_; }
    void exited(int status);
    void on_events(std::uint32_t events) override;

private:
    void try_reap();
    void finish();

    EventLoop& loop_;
    std::string exe_;
    double timeout_s_;
    Done done_;
    UniqueFd out_;
    pid_t pid_ = 0;
    std::optional<int> status_;
    bool eof_ = false;
    bool timed_out_ = false;
    bool finished_ = false;
    std::string output_;
    Timer timeout_;
    Timer poll_; // the output closed before the exit: look for the status again
};

// The executable this process runs, as a path (readlink /proc/self/exe);
// empty if it cannot be read.
[[nodiscard]] std::string own_executable();

} // namespace lonc
