// The supervisor's children: one slot per peer (keyed by host id, never by
// pid), the child forked for it, its restarts (RestartPolicy: at once, then
// 1, 2, 4 ... 60 s, skipped after --max-attempts), its drain when a reload
// retires or replaces the peer (killed if not done in time), and, during
// lonctl upgrade, the peer's pair of children: the old binary's, told to
// hand off once the new one's link is up.
//
// Children does what its slots need and tells its owner the rest through
// ChildrenEvents, the way a link reports to its PeerWorker: the supervisor
// owns the prober, the status round, the notifier and the upgrade run.
// Processes are made and signalled through ChildOps: the supervisor's
// fork (fork_child) and kill(2); a test's socketpairs and a record.
#pragma once

#include "lonc/core/child_report.hpp"
#include "lonc/core/config.hpp"
#include "lonc/core/control_words.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/core/options.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/runtime/ipc.hpp"
#include "lonc/supervisor/restart_policy.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace lonc {

// In-flight requests get this long at TERM (and a child a reload retires);
// children still alive after drain_grace + kill_margin are killed.
inline constexpr double drain_grace = 5.0;
inline constexpr double kill_margin = 2.0;
// lonctl upgrade: a new child whose link is not up within handover_timeout
// (while the old child's is) is given up, and its peer keeps the old child.
inline constexpr double handover_timeout = 30.0;

// What the slots tell their owner. Called from Children's methods and
// from the loop; a callee may call Children back.
class ChildrenEvents {
public:
    // peer wants a probe now: a new slot, an unreachable peer woken, a
    // peer's new address once its old child has drained.
    virtual void probe(const Peer& peer) = 0;
    // The running child of id sent its status report (in its slot now).
    virtual void report_arrived(const std::string& id) = 0;
    // A link came up or went down, or a slot came or went.
    virtual void links_changed() = 0;
    // lonctl upgrade: id's hand-over is over: its old child exited
    // (failure empty), or its new child was given up (failure: why; the
    // old child is the peer's again).
    virtual void handover_ended(const std::string& id,
                                const std::optional<std::string>& failure) = 0;
    // After stop_all(): the last child has been reaped.
    virtual void all_gone() = 0;

protected:
    ~ChildrenEvents() = default;
};

// A child just made: pid > 0 and the parent's end of its socketpair, or
// pid 0 and why it could not be made.
struct ChildSpawn {
    pid_t pid = 0;
    UniqueFd channel;
    std::string error;
};

struct ChildOps {
    // Makes a child for peer (successor: the peer's old child still runs).
    std::function<ChildSpawn(const Peer& peer, bool successor)> spawn;
    std::function<void(pid_t pid, int sig)> signal;
};

// How a child ended, for the log: "exit 1", "signal 9 (Killed)", with
// ", core dumped" when it did.
[[nodiscard]] std::string describe_exit(int status);

// The real spawn: forks; the child sheds the parent's descriptors and
// signals, and runs the peer's worker (run_child) on fd 3.
[[nodiscard]] ChildSpawn fork_child(const Settings& settings, const Peer& peer, const Peer& self,
                                    const Options& opts, bool successor);

class Children {
public:
    struct Slot {
        Peer peer;
        SlotState state = SlotState::probing;
        pid_t pid = 0;
        std::unique_ptr<ipc::Channel> channel;
        RestartPolicy restarts; // deaths, backoff, skipping
        std::unique_ptr<Timer> restart_timer;
        std::optional<Peer> successor;     // draining: the entry that replaces it
        std::unique_ptr<Timer> kill_timer; // draining: not done in time
        std::uint64_t starts = 0;          // children started for this peer
        bool link_up = false;
        bool unreachable_logged = false;
        // The last status report of this child (generation 0: none yet).
        ChildReport report;
        // lonctl upgrade. inherited: the child is the old binary's (adopted
        // across the exec). old: the child being replaced while the new one
        // (pid, channel) gets its link up; it is told to hand off then (at
        // once if its own link is down) and finishes what it holds.
        bool inherited = false;
        struct Outgoing {
            pid_t pid = 0;
            std::unique_ptr<ipc::Channel> channel;
            bool link_up = false;
            bool handed = false; // told to hand off
        };
        std::unique_ptr<Outgoing> old;
        std::unique_ptr<Timer> handover_timer;
    };

    // opts and config are the supervisor's, read at each use (a reload
    // replaces them in place).
    Children(EventLoop& loop, const Options& opts, const Config& config, ChildrenEvents& events,
             ChildOps ops);
    Children(const Children&) = delete;
    Children& operator=(const Children&) = delete;
    ~Children();

    [[nodiscard]] const std::map<std::string, Slot>& slots() const noexcept { return slots_; }
    [[nodiscard]] const std::map<pid_t, std::string>& pids() const noexcept { return pids_; }
    [[nodiscard]] std::size_t links_up() const;
    // The first peer whose child a reload is retiring, if any.
    [[nodiscard]] std::optional<std::string> draining() const;

    // ---- peers (start, probes, a reload's steps)
    // The peer has a child already (adopted from the old binary).
    [[nodiscard]] bool has_child(const std::string& id) const;
    // A slot for peer, probed now; false (nothing done) if has_child(id).
    bool add(const Peer& peer);
    // The probe of id answered: a child if reachable, else unreachable.
    void probed(const std::string& id, bool reachable, const std::string& why);
    // Probes every unreachable peer again.
    void reprobe();
    // The same peer with details its child has no use for (domain, role).
    void keep(const Peer& peer);
    // A peer gone from hosts.tab: its child drains and exits (the slot
    // goes with it); a peer without a child goes now.
    void retire(const std::string& id);
    // A peer with a new address or port: a new child, after the old one.
    void replace(const std::string& id, const Peer& peer);
    void set_successor(const std::string& id, std::optional<Peer> peer);

    // ---- the children
    // A child is gone (from the supervisor's reaper); an unknown pid is
    // ignored.
    void child_exited(pid_t pid, int status);
    // Now, not at the next timer: a running child gets `running` (retry or
    // reconnect), a peer waiting to restart or skipped gets a child, an
    // unreachable one is probed. False if a running child cannot be told.
    bool wake(const std::string& id, ipc::Type running);
    // USR1: every peer is woken (retry) unless its child runs with its link
    // up, and every peer's deaths are forgotten.
    void retry_all();
    // Sends status_request to every running child; how many were asked.
    std::size_t ask_status(std::uint64_t generation);
    // Every running child has answered generation.
    [[nodiscard]] bool all_answered(std::uint64_t generation) const;
    // A reload's options, for every running child.
    void send_options(const std::string& text);
    // A delayed file for host (empty: for every child).
    void spool_hint(std::string_view host, std::string_view name);

    // ---- shutdown
    // Every child is told to drain (or TERMed); those alive after
    // drain_grace + kill_margin are killed. Nothing restarts after this;
    // all_gone() once the last is reaped.
    void stop_all();
    // A second TERM: every child is killed; the caller reaps them
    // (forget_pid) and exits.
    void kill_all_now();
    void forget_pid(pid_t pid) { pids_.erase(pid); }

    // ---- lonctl upgrade
    // The new supervisor takes an old binary's child (peer: its entry in
    // hosts.tab; null: gone from it, so the child drains). True if the
    // child is the peer's and is to be handed over.
    bool adopt(const std::string& id, pid_t pid, UniqueFd channel, bool link_up, const Peer* peer);
    // Starts id's hand-over: a new child, while the inherited one serves.
    // False if there is nothing to hand over (the inherited child died
    // meanwhile). May end the hand-over at once (handover_ended).
    bool begin_handover(const std::string& id);

private:
    void spawn(Slot& slot);
    std::unique_ptr<ipc::Channel> channel_to(Slot& slot, pid_t pid, UniqueFd fd);
    void on_child_message(Slot& slot, pid_t from, const ipc::Message& msg);
    void schedule_restart(Slot& slot);
    void log_skipped();
    void drain_child(Slot& slot);
    bool wake(Slot& slot, ipc::Type running);
    void hand_off_old(Slot& slot);
    void handover_failed(Slot& slot, const std::string& why);
    void old_child_exit(Slot& slot, pid_t pid, int status);
    void maybe_all_gone();

    EventLoop& loop_;
    const Options& opts_;
    const Config& config_;
    ChildrenEvents& events_;
    ChildOps ops_;
    std::map<std::string, Slot> slots_; // keyed by host id, never by pid
    std::map<pid_t, std::string> pids_;
    bool stopping_ = false;
    Timer kill_timer_; // stop_all(): every child not done in time
};

} // namespace lonc
