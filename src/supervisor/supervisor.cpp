#include "lonc/supervisor/supervisor.hpp"

#include "lonc/core/child_report.hpp"
#include "lonc/core/clock_text.hpp"
#include "lonc/core/control_words.hpp"
#include "lonc/core/options.hpp"
#include "lonc/core/spool.hpp"
#include "lonc/relay/child.hpp"
#include "lonc/relay/spooler.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/runtime/ipc.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"
#include "lonc/runtime/notify.hpp"
#include "lonc/runtime/signals.hpp"
#include "lonc/supervisor/control.hpp"
#include "lonc/supervisor/metrics.hpp"
#include "lonc/supervisor/probe.hpp"
#include "lonc/supervisor/reload_plan.hpp"
#include "lonc/supervisor/restart_policy.hpp"
#include "lonc/supervisor/spool_watch.hpp"
#include "lonc/supervisor/startup.hpp"
#include "lonc/supervisor/status.hpp"
#include "lonc/supervisor/status_round.hpp"
#include "lonc/supervisor/upgrade.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("supervisor");
}

// In-flight requests get this long at TERM (and a child a reload retires);
// children still alive after drain_grace + kill_margin are killed.
constexpr double drain_grace = 5.0;
constexpr double kill_margin = 2.0;
// Status: how long to wait for the children's answers.
constexpr double status_wait = 1.0;
// lonctl upgrade: the new binary's check may take this long; this many
// peers are handed over at a time; a new child whose link is not up within
// handover_timeout (while the old child's is) is given up, and its peer
// keeps the old child.
constexpr double check_timeout = 30.0;
constexpr std::size_t handover_window = 8;
constexpr double handover_timeout = 30.0;

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string describe(int status) {
    if (WIFEXITED(status)) {
        return "exit " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        std::string s = std::string("signal ") + std::to_string(WTERMSIG(status)) + " (" +
                        ::strsignal(WTERMSIG(status)) + ")";
        if (WCOREDUMP(status)) {
            s += ", core dumped";
        }
        return s;
    }
    return "status " + std::to_string(status);
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> out;
    for (std::size_t at = 0; at < text.size();) {
        auto nl = text.find('\n', at);
        nl = nl == std::string::npos ? text.size() : nl;
        out.push_back(text.substr(at, nl - at));
        at = nl + 1;
    }
    return out;
}

// An answer of one line, and a verdict with what follows it.
std::string line_of(std::string_view word) {
    return std::string(word) + "\n";
}
std::string verdict(std::string_view word, const std::string& text) {
    return std::string(word) + "\n" + text + "\n";
}

std::string joined(const std::vector<std::string>& items, const char* sep = ", ") {
    std::string out;
    for (const auto& i : items) {
        out += (out.empty() ? "" : sep) + i;
    }
    return out;
}

class Supervisor {
public:
    explicit Supervisor(SupervisorSetup setup);
    int run();

private:
    struct Slot {
        Peer peer;
        SlotState state = SlotState::probing;
        pid_t pid = 0;
        std::unique_ptr<ipc::Channel> channel;
        RestartPolicy restarts; // deaths, backoff, skipping
        std::unique_ptr<Timer> restart_timer;
        std::optional<Peer> successor;     // draining: the entry that replaces it
        std::unique_ptr<Timer> kill_timer; // draining: not done in time
        std::uint64_t starts = 0;          // children forked for this peer
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

    void start_peers();
    void on_probe(const std::string& id, bool reachable, const std::string& why);
    void spawn(Slot& slot);
    [[noreturn]] void become_child(Slot& slot, UniqueFd channel);
    std::unique_ptr<ipc::Channel> channel_to(Slot& slot, pid_t pid, UniqueFd fd);
    void on_child_message(Slot& slot, pid_t from, const ipc::Message& msg);
    void old_child_exit(Slot& slot, pid_t pid, int status);
    // lonctl upgrade (upgrade.hpp): check and execute the new binary; in
    // the new one, adopt the old children and replace them peer by peer.
    void start_upgrade(ControlServer::ConnId waiter);
    void reject_upgrade(ControlServer::ConnId waiter, const std::string& why);
    void exec_upgrade(ControlServer::ConnId waiter, CheckVerdict verdict,
                      const std::string& output);
    void adopt(Handover h);
    void pump_upgrade();
    void begin_handover(Slot& slot);
    void hand_off_old(Slot& slot);
    void handover_failed(Slot& slot, const std::string& why);
    void finish_upgrade();
    void run_pending_reloads();
    void reap();
    void on_child_exit(pid_t pid, int status);
    void schedule_restart(Slot& slot);
    void log_skipped();
    void on_signal(const signalfd_siginfo& si);
    void on_usr1();
    // Reloads now, or once the first probes are done; answers waiter (a
    // lonctl reload) with the outcome.
    void request_reload(const std::string& source,
                        std::optional<ControlServer::ConnId> waiter = std::nullopt);
    struct ReloadOutcome {
        bool applied = false;
        std::string text; // what was done, or why not (one reason a line)
    };
    ReloadOutcome reload(const std::string& source);
    std::string apply(Loaded next);
    void apply_step(const PeerAction& a);
    void retire(Slot& slot);
    void replace(Slot& slot, const Peer& peer);
    void drain_child(Slot& slot);
    void warn_undeliverable(const std::vector<std::string>& removed);
    void finish_departed();
    void begin_shutdown();
    void maybe_finish_shutdown();
    void finish_shutdown();
    std::size_t ask_status(std::uint64_t generation);
    void write_status(std::uint64_t generation, unsigned want);
    void on_control(ControlServer::ConnId id, std::string_view line);
    [[nodiscard]] std::string reconnect(const std::string& id);
    bool wake(Slot& slot, ipc::Type running);
    void on_reprobe();
    void on_spool_hint(std::string_view host, std::string_view name);
    void update_notify();

    SupervisorSetup s_;
    const Settings& settings() const { return *s_.config.settings; }
    EventLoop loop_;
    std::map<std::string, Slot> slots_; // keyed by host id, never by pid
    std::map<pid_t, std::string> pids_;
    Prober prober_;
    SignalReader signals_;
    Timer reprobe_timer_;
    Timer kill_timer_;
    Notifier notifier_;
    std::size_t initial_probes_ = 0;
    bool ready_ = false;

    bool shutting_down_ = false;

    struct UpgradeRun {
        std::optional<ControlServer::ConnId> waiter;
        std::string from;
        std::int64_t started_ms = 0;
        HandoverQueue queue;
    };
    std::optional<UpgradeRun> upgrade_;
    std::unique_ptr<BinaryCheck> check_; // lonctl upgrade's check of the new binary
    std::vector<ControlServer::ConnId> pending_upgrades_; // asked for while starting

    ReloadStatus reload_;
    std::set<std::string> removed_hosts_; // their delayed files are listed in status
    std::vector<std::pair<std::string, std::optional<ControlServer::ConnId>>> pending_reloads_;

    StatusRound status_;
    std::vector<ControlServer::ConnId> status_waiters_; // lonctl status
    Timer metrics_timer_;
    std::time_t start_time_ = std::time(nullptr);
    ControlServer control_;

    SpoolWatch spool_watch_;
};

Supervisor::Supervisor(SupervisorSetup setup)
    : s_(std::move(setup)), prober_(loop_, s_.config.settings->lond_port, s_.opts.probe_timeout,
                                    [this](const std::string& id, bool up, const std::string& why) {
                                        on_probe(id, up, why);
                                    }),
      signals_(loop_, {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD},
               [this](const signalfd_siginfo& si) { on_signal(si); }),
      reprobe_timer_(loop_, [this] { on_reprobe(); }),
      kill_timer_(loop_,
                  [this] {
                      for (const auto& [pid, id] : pids_) {
                          lg().warn("Child {} for {} did not finish in time: killing it", pid, id);
                          ::kill(pid, SIGKILL);
                      }
                  }),
      status_(
          loop_, status_wait, [this](std::uint64_t gen) { return ask_status(gen); },
          [this](std::uint64_t gen, unsigned want) { write_status(gen, want); }),
      metrics_timer_(loop_,
                     [this] {
                         metrics_timer_.arm_in(seconds(s_.opts.metrics_interval));
                         status_.request(StatusRound::metrics);
                     }),
      control_(loop_, s_.config.settings->control_path(),
               [this](ControlServer::ConnId id, std::string_view line) { on_control(id, line); }),
      spool_watch_(
          loop_, s_.config.settings->spool_dir(),
          [this](std::string_view host, std::string_view name) { on_spool_hint(host, name); }) {}

int Supervisor::run() {
    reload_.time = reload_.last_success = start_time_;
    reload_.result = "loaded at start";
    log::set_status("Starting");
    for (const auto& p : s_.config.problems) {
        lg().warn("{}", p.to_string());
    }
    if (s_.handover) {
        lg().info("lonc {} parent {} upgraded from {}: {} peers, {} children to hand over",
                  LONC_VERSION, ::getpid(), s_.handover->from_version, s_.config.hosts.peers.size(),
                  s_.handover->children.size());
    } else {
        lg().info("lonc {} parent {} starting: {} peers, londPort {}", LONC_VERSION, ::getpid(),
                  s_.config.hosts.peers.size(), settings().lond_port);
    }
    notifier_.start_watchdog(loop_);
    (void)spool_watch_.start();
    if (std::string error; !control_.open(error)) {
        lg().warn("No control socket (lonctl status and reconnect will not work): {}", error);
    }
    if (s_.handover) {
        adopt(std::move(*std::exchange(s_.handover, std::nullopt)));
    }
    start_peers();
    pump_upgrade();
    reprobe_timer_.arm_in(seconds(s_.opts.reprobe_interval));
    const int code = loop_.run();
    return code;
}

// ---------------------------------------------------------------- peers

void Supervisor::start_peers() {
    log::set_status("Probing peers");
    finish_departed();
    initial_probes_ = 0;
    for (const auto& peer : s_.config.hosts.peers) {
        auto& slot = slots_[peer.id];
        if (slot.pid > 0) {
            continue; // an old binary's child, adopted
        }
        ++initial_probes_;
        slot.peer = peer;
        slot.state = SlotState::probing;
        prober_.probe(peer);
    }
    if (initial_probes_ == 0) {
        on_probe("", false, "");
    }
}

void Supervisor::on_probe(const std::string& id, bool reachable, const std::string& why) {
    if (const auto it = slots_.find(id); it != slots_.end() && !shutting_down_) {
        auto& slot = it->second;
        if (slot.state == SlotState::probing || slot.state == SlotState::unreachable) {
            if (reachable) {
                if (slot.state == SlotState::unreachable) {
                    lg().info("INFO: {} answers again ({})", id, why);
                }
                slot.unreachable_logged = false;
                spawn(slot);
            } else {
                slot.state = SlotState::unreachable;
                if (!slot.unreachable_logged) {
                    lg().warn("{} ({}) is unreachable: {}; probing again every {} s", id,
                              slot.peer.ip, why, s_.opts.reprobe_interval);
                    slot.unreachable_logged = true;
                }
            }
        }
    }
    if (!ready_ && initial_probes_ > 0) {
        --initial_probes_;
    }
    if (!ready_ && initial_probes_ == 0) {
        ready_ = true;
        lg().info("Done starting initial servers");
        log::set_status("Sleeping");
        s_.launcher.report(exit_ok);
        notifier_.ready();
        update_notify();
        if (!s_.opts.metrics_file.empty()) {
            metrics_timer_.arm_in(EventLoop::Clock::duration::zero());
        }
        if (!upgrade_) {
            run_pending_reloads();
        }
        for (const auto waiter : std::exchange(pending_upgrades_, {})) {
            start_upgrade(waiter); // the first runs; any other is told one is under way
        }
    }
}

// Reloads asked for while starting or upgrading: one now, for all of them.
void Supervisor::run_pending_reloads() {
    if (const auto waiting = std::exchange(pending_reloads_, {}); !waiting.empty()) {
        const auto out = reload(waiting.front().first);
        for (const auto& [source, waiter] : waiting) {
            if (waiter) {
                control_.answer(*waiter,
                                verdict(out.applied ? words::applied : words::rejected, out.text));
            }
        }
    }
}

void Supervisor::on_reprobe() {
    reprobe_timer_.arm_in(seconds(s_.opts.reprobe_interval));
    for (auto& [id, slot] : slots_) {
        if (slot.state == SlotState::unreachable) {
            prober_.probe(slot.peer);
        }
    }
    if (!spool_watch_.watching()) {
        (void)spool_watch_.start();
    }
}

void Supervisor::spawn(Slot& slot) {
    lg().info("Attempting to start child for server {}", slot.peer.id);
    // Out of descriptors or processes: counted as an attempt, so the retry
    // backs off (and the peer is skipped after --max-attempts) instead of
    // taking the supervisor down or spinning.
    auto start_failed = [&](const std::string& why) {
        const auto n = slot.restarts.died(loop_.now());
        lg().error("Cannot start a child for {}: {} ({} of {} attempts)", slot.peer.id, why, n,
                   s_.opts.max_attempts);
        slot.state = SlotState::restarting;
        schedule_restart(slot);
    };
    std::pair<UniqueFd, UniqueFd> ends;
    try {
        ends = ipc::make_pair();
    } catch (const std::system_error& e) {
        start_failed(e.what());
        return;
    }
    auto& [parent_end, child_end] = ends;
    const pid_t pid = ::fork();
    if (pid < 0) {
        start_failed(std::string("fork: ") + std::strerror(errno));
        return;
    }
    if (pid == 0) {
        become_child(slot, std::move(child_end));
    }
    child_end.reset();
    ++slot.starts;
    slot.pid = pid;
    slot.state = SlotState::running;
    slot.link_up = false;
    slot.report = {};
    pids_[pid] = slot.peer.id;
    slot.channel = channel_to(slot, pid, std::move(parent_end));
}

// Messages are told apart by the child's pid: during an upgrade a slot has
// two children, and a channel outlives its move to Slot::old.
std::unique_ptr<ipc::Channel> Supervisor::channel_to(Slot& slot, pid_t pid, UniqueFd fd) {
    Slot* sp = &slot;
    return std::make_unique<ipc::Channel>(
        loop_, std::move(fd),
        [this, sp, pid](const ipc::Message& m) { on_child_message(*sp, pid, m); },
        [sp, pid](std::string_view /*why*/) {
            if (sp->pid == pid) {
                sp->link_up = false;
            }
        });
}

// The forked child: shed everything of the parent's and run the worker.
void Supervisor::become_child(Slot& slot, UniqueFd channel) {
    const pid_t parent = ::getppid();
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) {
        ::_exit(0); // the parent died between fork and prctl
    }
    reset_signals();
    // The channel becomes fd 3; every other descriptor of the parent (pid
    // file and its lock, other children's channels, epoll, signalfd,
    // inotify, log) is closed.
    if (::dup2(channel.get(), 3) != 3) {
        ::_exit(1);
    }
    ::close_range(4, ~0U, 0);
    (void)channel.release();
    ChildSetup setup{settings(), slot.peer, *s_.config.own_host(), s_.opts, 3, slot.old != nullptr};
    const int code = run_child(setup);
    std::exit(code);
}

void Supervisor::on_child_message(Slot& slot, pid_t from, const ipc::Message& msg) {
    if (slot.old && from == slot.old->pid) {
        if (msg.type == ipc::Type::link_state) {
            slot.old->link_up = parse_link_state(msg.payload) == LinkState::up;
        }
        return; // the old child's reports no longer count
    }
    if (from != slot.pid) {
        return; // a child given up on
    }
    switch (msg.type) {
    case ipc::Type::status_reply: {
        std::string error;
        auto report = ChildReport::decode(msg.payload, error);
        if (!report) { // parse() let it through, so this is a bug
            lg().warn("Bad status report from child {} for {}: {}", slot.pid, slot.peer.id, error);
            return;
        }
        slot.report = std::move(*report);
        slot.link_up = slot.report.link == LinkState::up;
        if (status_.collecting()) {
            bool all = true;
            for (const auto& [id, s] : slots_) {
                if (s.state == SlotState::running && s.channel &&
                    s.report.generation != status_.generation()) {
                    all = false;
                }
            }
            status_.answered(all);
        }
        break;
    }
    case ipc::Type::link_state:
        slot.link_up = parse_link_state(msg.payload) == LinkState::up;
        update_notify();
        if (slot.link_up && slot.old && !slot.old->handed) {
            hand_off_old(slot); // the new child holds the socket path now
        }
        break;
    default:
        lg().warn("Unexpected message from child {} for {}", slot.pid, slot.peer.id);
        break;
    }
}

void Supervisor::reap() {
    for (;;) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }
        on_child_exit(pid, status);
    }
}

void Supervisor::on_child_exit(pid_t pid, int status) {
    if (check_ && pid == check_->pid()) {
        check_->exited(status);
        return;
    }
    const auto it = pids_.find(pid);
    if (it == pids_.end()) {
        return; // not one of ours (a mailer, say)
    }
    const std::string id = it->second;
    pids_.erase(it);
    const auto sit = slots_.find(id);
    if (sit == slots_.end()) {
        maybe_finish_shutdown();
        return;
    }
    auto& slot = sit->second;
    if (slot.old && slot.old->pid == pid) {
        old_child_exit(slot, pid, status);
        return;
    }
    if (pid != slot.pid) { // a new child an upgrade gave up on
        maybe_finish_shutdown();
        return;
    }
    slot.inherited = false;
    if (slot.old && !slot.old->handed && !shutting_down_) {
        // The new binary's child died before taking over: the old one stays.
        slot.channel.reset();
        slot.pid = 0;
        slot.link_up = false;
        handover_failed(slot, "its new child " + std::to_string(pid) + " ended (" +
                                  describe(status) + ")");
        return;
    }
    slot.channel.reset();
    slot.pid = 0;
    slot.link_up = false;
    (void)remove_dead_socket(settings().socket_path(id)); // the dead child's, if it left one
    update_notify();
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (shutting_down_) {
        if (!clean) {
            lg().warn("Child {} for server {} ended: {}", pid, id, describe(status));
        }
        maybe_finish_shutdown();
        return;
    }
    if (slot.state == SlotState::draining) {
        // Retired by a reload: not a death, nothing to restart.
        slot.kill_timer.reset();
        if (!clean) {
            lg().warn("Child {} for server {} ended: {}", pid, id, describe(status));
        }
        if (!slot.successor) {
            lg().info("INFO: Child {} for removed server {} has finished", pid, id);
            slots_.erase(id);
            update_notify();
            return;
        }
        slot.peer = *std::exchange(slot.successor, std::nullopt);
        slot.restarts.forget();
        slot.unreachable_logged = false;
        slot.state = SlotState::probing;
        lg().info("INFO: Child {} for {} has finished; its new address {} comes next", pid, id,
                  slot.peer.ip);
        prober_.probe(slot.peer);
        return;
    }
    const auto n = slot.restarts.died(loop_.now());
    if (clean) {
        lg().info("Child {} for server {} exited ({} of {} attempts)", pid, id, n,
                  s_.opts.max_attempts);
    } else {
        lg().error("Child {} for server {} died: {} ({} of {} attempts)", pid, id, describe(status),
                   n, s_.opts.max_attempts);
    }
    schedule_restart(slot);
}

// Keyed by peer: restarting one child never touches another.
void Supervisor::schedule_restart(Slot& slot) {
    if (!slot.restart_timer) {
        Slot* sp = &slot;
        slot.restart_timer = std::make_unique<Timer>(loop_, [this, sp] {
            if (shutting_down_) {
                return;
            }
            if (sp->state == SlotState::skipped) {
                lg().info("INFO: {} quiet for {} minutes: trying again", sp->peer.id,
                          std::chrono::duration_cast<std::chrono::minutes>(RestartPolicy::window)
                              .count());
                sp->restarts.forget();
            }
            lg().info("INFO: Trying to reconnect for {} ({} of {} attempts)", sp->peer.id,
                      sp->restarts.count() + 1, s_.opts.max_attempts);
            spawn(*sp);
        });
    }
    slot.restart_timer->arm_at(slot.restarts.next_start(loop_.now(), s_.opts.max_attempts));
    if (slot.restarts.skipped(s_.opts.max_attempts)) {
        slot.state = SlotState::skipped;
        log_skipped();
        return;
    }
    slot.state = SlotState::restarting;
}

void Supervisor::log_skipped() {
    std::string hosts;
    for (const auto& [id, slot] : slots_) {
        if (slot.state == SlotState::skipped) {
            hosts += id + " ";
        }
    }
    if (!hosts.empty()) {
        lg().warn("Skipped {}", hosts);
    }
}

// -------------------------------------------------------------- signals

void Supervisor::on_signal(const signalfd_siginfo& si) {
    switch (si.ssi_signo) {
    case SIGCHLD:
        reap();
        break;
    case SIGUSR1:
        on_usr1();
        break;
    case SIGHUP:
    case SIGUSR2:
        request_reload(si.ssi_signo == SIGHUP ? "HUP" : "USR2");
        break;
    case SIGINT:
    case SIGTERM:
        if (shutting_down_) {
            lg().error("Second {}: exiting now", ::strsignal(static_cast<int>(si.ssi_signo)));
            for (const auto& [pid, id] : pids_) {
                ::kill(pid, SIGKILL);
            }
            while (!pids_.empty()) {
                int status = 0;
                const pid_t pid = ::waitpid(-1, &status, 0);
                if (pid < 0) {
                    break;
                }
                pids_.erase(pid);
            }
            finish_shutdown();
        } else {
            begin_shutdown();
        }
        break;
    default:
        break;
    }
}

void Supervisor::on_usr1() {
    if (shutting_down_) {
        return;
    }
    lg().info("USR1: Trying to establish connections again");
    for (auto& [id, slot] : slots_) {
        if (slot.state != SlotState::running || !slot.link_up) {
            (void)wake(slot, ipc::Type::retry); // links that are up are untouched
        }
        slot.restarts.forget();
    }
    status_.request(StatusRound::files);
}

// ----------------------------------------------------------------- reload
//
// A reload reads the whole configuration again (load_configuration: the
// command line, the settings file, access.conf, hosts.tab) and takes it
// only if --check-config would call it OK and nothing in it needs a
// restart. Then only the difference is applied: a peer whose address and
// londPort are unchanged keeps its child, link and socket; an added peer is
// probed and gets a child; a removed peer's child drains and exits (its
// socket goes with it); a peer whose address changed gets a new child once
// the old one has drained. New timeouts and limits reach running children
// over their socketpair.

void Supervisor::request_reload(const std::string& source,
                                std::optional<ControlServer::ConnId> waiter) {
    if (shutting_down_) {
        if (waiter) {
            control_.answer(*waiter, line_of(words::shutting_down));
        }
        return;
    }
    if (!ready_ || upgrade_) {
        lg().info("INFO: {}: reload as soon as the {} done", source,
                  upgrade_ ? "upgrade is" : "first probes are");
        pending_reloads_.emplace_back(source, waiter);
        return;
    }
    const auto out = reload(source);
    if (waiter) {
        control_.answer(*waiter, verdict(out.applied ? words::applied : words::rejected, out.text));
    }
}

Supervisor::ReloadOutcome Supervisor::reload(const std::string& source) {
    notifier_.reloading();
    log::set_status("Reloading");
    auto next = load_configuration(s_.argv, s_.cwd);
    auto reasons = next.problems();
    if (reasons.empty()) {
        reasons = restart_reasons({s_.opts, s_.config}, {next.opts, next.config});
    }
    ReloadOutcome out;
    reload_.time = std::time(nullptr);
    if (!reasons.empty()) {
        for (const auto& r : reasons) {
            log::error_not_critical(lg(), "{}: configuration not reloaded: {}", source, r);
        }
        log::error_not_critical(
            lg(), "{}: reload rejected; lonc runs on with its configuration unchanged", source);
        out.text = joined(reasons, "\n");
        reload_.success = false;
        reload_.result = "rejected: " + joined(reasons, "; ");
    } else {
        out.applied = true;
        out.text = apply(std::move(next));
        lg().info("INFO: {}: configuration reloaded: {}", source, out.text);
        reload_.success = true;
        reload_.last_success = reload_.time;
        reload_.result = "applied: " + out.text;
    }
    log::set_status("Sleeping");
    notifier_.ready();
    update_notify();
    status_.request(StatusRound::files); // the outcome shows in the status files now
    return out;
}

// Takes next (already checked) and applies the difference (reload_plan
// decides it); returns what was done.
std::string Supervisor::apply(Loaded next) {
    const auto options = diff_options(s_.opts, next.opts);
    const bool port_changed = settings().lond_port != next.config.settings->lond_port;
    const bool metrics_changed =
        s_.opts.metrics_file != next.opts.metrics_file ||
        s_.opts.metrics_interval != next.opts.metrics_interval; // NOLINT(*-float-equal)
    const bool reprobe_changed = s_.opts.reprobe_interval != next.opts.reprobe_interval;
    s_.opts = std::move(next.opts);
    s_.config = std::move(next.config);
    log::set_level(spdlog::level::from_str(s_.opts.log_level));
    prober_.configure(settings().lond_port, s_.opts.probe_timeout);
    if (reprobe_changed) {
        reprobe_timer_.arm_in(seconds(s_.opts.reprobe_interval));
    }
    if (s_.opts.metrics_file.empty()) {
        metrics_timer_.cancel();
    } else if (metrics_changed || !metrics_timer_.armed()) {
        metrics_timer_.arm_in(EventLoop::Clock::duration::zero());
    }

    std::vector<SlotView> views;
    views.reserve(slots_.size());
    for (const auto& [id, slot] : slots_) {
        views.push_back({id, slot.peer.ip, slot.state == SlotState::draining, slot.successor});
    }
    const auto plan = plan_peers(views, s_.config.hosts.peers, port_changed);
    for (const auto& a : plan.actions) {
        apply_step(a);
    }
    if (options.for_children) {
        const auto text = child_options_text(s_.opts);
        for (auto& [id, slot] : slots_) {
            if (slot.state == SlotState::running && slot.channel &&
                !slot.channel->send_or_queue(ipc::Type::options, text)) {
                lg().warn("Could not pass the new options to child {} for {}", slot.pid, id);
            }
        }
    }
    warn_undeliverable(plan.removed);
    for (const auto& id : plan.added) {
        removed_hosts_.erase(id);
    }
    return summary(plan, options);
}

void Supervisor::apply_step(const PeerAction& a) {
    if (a.step == PeerStep::start) {
        auto& slot = slots_[a.id];
        slot.peer = *a.peer;
        slot.state = SlotState::probing;
        prober_.probe(slot.peer);
        return;
    }
    auto& slot = slots_.at(a.id);
    switch (a.step) {
    case PeerStep::keep:
        slot.peer = *a.peer; // domain, role, hostname: the child has no use for them
        break;
    case PeerStep::retire:
        retire(slot); // may erase the slot
        break;
    case PeerStep::replace:
        replace(slot, *a.peer);
        break;
    case PeerStep::set_successor:
        slot.successor = a.peer;
        break;
    case PeerStep::drop_successor:
        slot.successor.reset();
        break;
    case PeerStep::start:
        break;
    }
}

// A peer gone from hosts.tab: its child drains and exits (the slot goes
// with it); a peer without a child goes now.
void Supervisor::retire(Slot& slot) {
    slot.successor.reset();
    prober_.cancel(slot.peer.id);
    if (slot.restart_timer) {
        slot.restart_timer->cancel();
    }
    if (slot.pid > 0) {
        drain_child(slot);
        return;
    }
    const std::string id = slot.peer.id;
    slots_.erase(id); // slot is gone
}

// A peer with a new address or port: a new child, after the old one.
void Supervisor::replace(Slot& slot, const Peer& peer) {
    prober_.cancel(slot.peer.id);
    if (slot.restart_timer) {
        slot.restart_timer->cancel();
    }
    if (slot.pid > 0) {
        slot.successor = peer;
        drain_child(slot);
        return;
    }
    slot.peer = peer;
    slot.restarts.forget();
    slot.unreachable_logged = false;
    slot.state = SlotState::probing;
    prober_.probe(peer);
}

void Supervisor::drain_child(Slot& slot) {
    slot.state = SlotState::draining;
    slot.link_up = false;
    if (!slot.channel || !slot.channel->send(ipc::Type::drain)) {
        ::kill(slot.pid, SIGTERM);
    }
    Slot* sp = &slot;
    slot.kill_timer = std::make_unique<Timer>(loop_, [sp] {
        if (sp->pid > 0) {
            lg().warn("Child {} for {} did not finish in time: killing it", sp->pid, sp->peer.id);
            ::kill(sp->pid, SIGKILL);
        }
    });
    slot.kill_timer->arm_in(seconds(drain_grace + kill_margin));
    update_notify();
}

// Delayed files of removed peers cannot be delivered any more: named here,
// and in the status files for as long as they are there.
void Supervisor::warn_undeliverable(const std::vector<std::string>& removed) {
    if (removed.empty()) {
        return;
    }
    const std::set<std::string> hosts(removed.begin(), removed.end());
    constexpr std::size_t listed = 10; // one short line, whatever delayed/ holds
    for (const auto& [host, names] : spool_files_of(settings().spool_dir(), hosts)) {
        std::string list;
        for (std::size_t i = 0; i < names.size() && i < listed; ++i) {
            list += (i == 0 ? "" : " ") + log::printable(names[i]);
        }
        if (names.size() > listed) {
            list += " and " + std::to_string(names.size() - listed) + " more";
        }
        lg().warn("{} was removed from hosts.tab; {} delayed message{} for it can no longer be "
                  "delivered: {}",
                  host, names.size(), names.size() == 1 ? "" : "s", list);
        removed_hosts_.insert(host);
    }
}
// --------------------------------------------------------------- shutdown

void Supervisor::begin_shutdown() {
    shutting_down_ = true;
    lg().error("Shutting down");
    notifier_.stopping();
    log::set_status("Shutting down");
    prober_.cancel_all();
    reprobe_timer_.cancel();
    metrics_timer_.cancel();
    control_.close();
    for (auto& [id, slot] : slots_) {
        if (slot.restart_timer) {
            slot.restart_timer->cancel();
        }
        slot.kill_timer.reset(); // kill_timer_ covers every child now
        slot.handover_timer.reset();
        if (slot.pid > 0) {
            if (!slot.channel || !slot.channel->send(ipc::Type::drain)) {
                ::kill(slot.pid, SIGTERM);
            }
        }
        if (slot.old && (!slot.old->channel || !slot.old->channel->send(ipc::Type::drain))) {
            ::kill(slot.old->pid, SIGTERM);
        }
    }
    upgrade_.reset();         // its lonctl sees the control socket close
    check_.reset();           // a check under way is killed
    pending_reloads_.clear(); // their lonctl sees the control socket close
    pending_upgrades_.clear();
    kill_timer_.arm_in(seconds(drain_grace + kill_margin));
    maybe_finish_shutdown();
}

void Supervisor::maybe_finish_shutdown() {
    if (shutting_down_ && pids_.empty()) {
        finish_shutdown();
    }
}

void Supervisor::finish_shutdown() {
    kill_timer_.cancel();
    for (const auto& [id, slot] : slots_) {
        (void)remove_dead_socket(settings().socket_path(id));
    }
    s_.pid_file.remove();
    lg().info("Exiting");
    loop_.stop(exit_ok);
}

// ----------------------------------------------------------------- status

// Asks every running child for its report (status_round.hpp).
std::size_t Supervisor::ask_status(std::uint64_t generation) {
    const auto gen = ipc::encode_generation(generation);
    std::size_t asked = 0;
    for (auto& [id, slot] : slots_) {
        if (slot.state == SlotState::running && slot.channel &&
            slot.channel->send(ipc::Type::status_request, gen)) {
            ++asked;
        }
    }
    return asked;
}

// Removed peers' delivery records: no child of theirs finishes them.
void Supervisor::finish_departed() {
    std::set<std::string> peers;
    for (const auto& peer : s_.config.hosts.peers) {
        peers.insert(peer.id);
    }
    (void)finish_departed_records(settings(), peers, s_.opts.spool_max_line);
}

void Supervisor::write_status(std::uint64_t generation, unsigned want) {
    finish_departed();
    StatusReport r;
    r.generation = generation;
    r.time = std::time(nullptr);
    r.parent_pid = ::getpid();
    r.parent_last_log = log::last_log();
    for (const auto& [id, slot] : slots_) {
        PeerStatus p;
        p.id = id;
        p.pid = slot.pid;
        p.state = std::string(to_string(slot.state));
        p.answered = slot.pid > 0 && slot.report.generation == generation;
        p.link_up = slot.link_up;
        p.restarts = slot.starts > 0 ? slot.starts - 1 : 0;
        if (p.answered) {
            p.report = slot.report;
        }
        r.peers.push_back(std::move(p));
    }
    r.parent_status = perl_localtime(r.time) + ": " + parent_summary(r.peers);
    reload_.undeliverable.clear();
    if (!removed_hosts_.empty()) {
        reload_.undeliverable = spool_files_of(settings().spool_dir(), removed_hosts_);
        std::erase_if(removed_hosts_,
                      [&](const std::string& h) { return reload_.undeliverable.count(h) == 0; });
    }
    r.reload = reload_;
    std::string error;
    const auto json = format_status_json(r);
    if ((want & StatusRound::files) != 0 &&
        !write_status_files(settings().status_dir(), r, json, error)) {
        lg().error("Cannot write the status files: {}", error);
    }
    if (!s_.opts.metrics_file.empty()) {
        const MetricsInput in{&r, read_self_facts(), start_time_};
        if (!write_file_atomic(s_.opts.metrics_file, format_metrics(in), error)) {
            lg().error("Cannot write the metrics file: {}", error);
        }
    }
    for (const auto id : std::exchange(status_waiters_, {})) {
        control_.answer(id, json);
    }
}

// ---------------------------------------------------------------- control

void Supervisor::on_control(ControlServer::ConnId id, std::string_view line) {
    const auto command = parse_command(line);
    if (!command) {
        lg().warn("Control socket: unknown command >{}<", log::printable(line));
        control_.answer(id, line_of(words::unknown_command));
        return;
    }
    switch (command->verb) {
    case Command::Verb::status:
        if (shutting_down_) {
            control_.answer(id, line_of(words::shutting_down));
            return;
        }
        status_waiters_.push_back(id);
        status_.request(StatusRound::files);
        return;
    case Command::Verb::reload:
        request_reload("lonctl reload", id);
        return;
    case Command::Verb::upgrade:
        start_upgrade(id);
        return;
    case Command::Verb::reconnect:
        control_.answer(id, reconnect(command->host) + "\n");
        return;
    }
}

// lonctl reconnect HOST: a running child drops and re-makes its links; a
// peer waiting for a restart or skipped gets a child now; an unreachable
// one is probed now.
std::string Supervisor::reconnect(const std::string& id) {
    if (shutting_down_) {
        return std::string(words::shutting_down);
    }
    const auto it = slots_.find(id);
    if (it == slots_.end()) {
        return std::string(words::no_such_host);
    }
    auto& slot = it->second;
    lg().info("INFO: Reconnect requested for {} ({})", id, to_string(slot.state));
    return std::string(wake(slot, ipc::Type::reconnect) ? words::ok : words::child_not_answering);
}

// Now, not at the next timer: a running child gets `running` (retry or
// reconnect), a peer waiting to restart or skipped gets a child, an
// unreachable one is probed. False if a running child cannot be told.
bool Supervisor::wake(Slot& slot, ipc::Type running) {
    switch (slot.state) {
    case SlotState::running:
        return slot.channel && slot.channel->send(running);
    case SlotState::skipped:
    case SlotState::restarting:
        slot.restarts.forget();
        slot.restart_timer->cancel();
        spawn(slot);
        return true;
    case SlotState::unreachable:
        prober_.probe(slot.peer);
        return true;
    case SlotState::probing:
    case SlotState::draining:
        return true;
    }
    return true;
}

// ---------------------------------------------------------------- upgrade
//
// lonctl upgrade: the binary at s_.exe must pass its own configuration
// check first (a binary that cannot start never replaces a working one);
// then this process executes it, keeping its pid, the pid file's lock, the
// waiting lonctl and every child's socketpair (upgrade.hpp). The new
// supervisor adopts the old children and replaces them handover_window
// peers at a time: a new child is forked, connects its link and puts its
// socket at the path (a rename: no connect ever finds no socket); then the
// old child is told to hand off: it takes its backlog, stops listening,
// answers what it holds and exits. Its spool lock goes with it, and the
// new child delivers from then on. A new child that dies or cannot get its
// link up is given up and its peer keeps the old child (so do the peers
// not handed over yet): lonc is never without a child for a peer it had.

void Supervisor::reject_upgrade(ControlServer::ConnId waiter, const std::string& why) {
    log::error_not_critical(lg(), "lonctl upgrade rejected; nothing changed: {}", why);
    control_.answer(waiter, verdict(words::rejected, why));
}

void Supervisor::start_upgrade(ControlServer::ConnId waiter) {
    if (shutting_down_) {
        control_.answer(waiter, line_of(words::shutting_down));
        return;
    }
    if (upgrade_ || (check_ && !check_->finished())) {
        reject_upgrade(waiter, "an upgrade is already under way");
        return;
    }
    if (!ready_) {
        lg().info("INFO: lonctl upgrade: as soon as the first probes are done");
        pending_upgrades_.push_back(waiter);
        return;
    }
    for (const auto& [id, slot] : slots_) {
        if (slot.state == SlotState::draining) {
            reject_upgrade(waiter, "a reload is still retiring the child for " + id +
                                       "; try again in a few seconds");
            return;
        }
    }
    if (s_.exe.empty()) {
        reject_upgrade(waiter, "cannot tell which executable lonc was started from");
        return;
    }
    lg().info("INFO: lonctl upgrade: checking {} -t", s_.exe);
    const std::vector<std::string> args(s_.argv.begin() + (s_.argv.empty() ? 0 : 1), s_.argv.end());
    // Through the loop: children are reaped, restarted and answered meanwhile.
    check_ = std::make_unique<BinaryCheck>(
        loop_, s_.exe, args, check_timeout,
        [this, waiter](CheckVerdict v, std::string output) { exec_upgrade(waiter, v, output); });
}

void Supervisor::exec_upgrade(ControlServer::ConnId waiter, CheckVerdict verdict,
                              const std::string& output) {
    if (verdict == CheckVerdict::failed) {
        std::string said;
        for (const auto& line : split_lines(output)) {
            if (!line.empty()) {
                said += "\n" + log::printable(line, 500);
            }
        }
        reject_upgrade(waiter, "the configuration check of " + s_.exe + " failed:" + said);
        return;
    }
    if (verdict == CheckVerdict::passed_with_problems) {
        // A start takes it (as this lonc did): reported, not refused. The
        // report's "problems:" section, on one line.
        std::string problems;
        bool in_section = false;
        for (const auto& line : split_lines(output)) {
            if (line.rfind("problems:", 0) == 0) {
                in_section = true;
            } else if (in_section && line.rfind("  ", 0) == 0) {
                problems += (problems.empty() ? "" : "; ") + log::printable(line.substr(2), 500);
            } else {
                in_section = false;
            }
        }
        lg().warn("lonctl upgrade: {} -t found problems a start skips; upgrading anyway: {}",
                  s_.exe, problems);
    }
    // What changed while the check ran.
    for (const auto& [id, slot] : slots_) {
        if (slot.state == SlotState::draining) {
            reject_upgrade(waiter, "a reload is still retiring the child for " + id +
                                       "; try again in a few seconds");
            return;
        }
    }
    Handover h;
    h.pid_file_fd = s_.pid_file.fd();
    // The new supervisor runs with the configuration this one runs with.
    h.config_fd = snapshot_fd(ConfigSnapshot::of(s_.opts, s_.config));
    if (h.config_fd < 0) {
        lg().warn("lonctl upgrade: cannot pass the configuration on ({}); the new binary reads "
                  "the files as they are now",
                  std::strerror(errno));
    }
    h.waiter_fd = control_.conn_fd(waiter);
    h.from_version = LONC_VERSION;
    h.started_ms = wall_ms();
    for (const auto& [id, slot] : slots_) {
        if (slot.pid > 0 && slot.channel && slot.state == SlotState::running) {
            h.children.push_back({id, slot.pid, slot.channel->fd(), slot.link_up});
        }
    }
    notifier_.reloading();
    lg().info("INFO: lonctl upgrade: {} passed its check; executing it ({} children to hand over)",
              s_.exe, h.children.size());
    const auto why = exec_handover(s_.exe, s_.argv, h); // returns only if it failed
    if (h.config_fd >= 0) {
        ::close(h.config_fd);
    }
    notifier_.ready();
    reject_upgrade(waiter, "cannot execute " + s_.exe + ": " + why);
}

// The new supervisor takes the old one's children as its own.
void Supervisor::adopt(Handover h) {
    std::optional<ControlServer::ConnId> waiter;
    if (h.waiter_fd >= 0) {
        ::fcntl(h.waiter_fd, F_SETFD, FD_CLOEXEC);
        waiter = control_.adopt(UniqueFd(h.waiter_fd));
    }
    std::vector<std::string> peers;
    for (auto& c : h.children) {
        ::fcntl(c.fd, F_SETFD, FD_CLOEXEC);
        const Peer* peer = s_.config.hosts.find(c.id);
        auto& slot = slots_[c.id];
        slot.peer = peer != nullptr ? *peer : Peer{c.id, {}, {}, {}, {}, {}, 0};
        slot.pid = c.pid;
        slot.state = SlotState::running;
        slot.link_up = c.link_up;
        slot.starts = 1;
        slot.inherited = true;
        pids_[c.pid] = c.id;
        slot.channel = channel_to(slot, c.pid, UniqueFd(c.fd));
        if (peer == nullptr) {
            lg().warn("{} is no longer in hosts.tab: its child {} drains and exits", c.id, c.pid);
            drain_child(slot);
            continue;
        }
        peers.push_back(c.id);
    }
    upgrade_.emplace(UpgradeRun{waiter, h.from_version, h.started_ms,
                                HandoverQueue(std::move(peers), handover_window)});
    update_notify();
}

void Supervisor::pump_upgrade() {
    if (!upgrade_ || shutting_down_) {
        return;
    }
    while (const auto id = upgrade_->queue.next()) {
        const auto it = slots_.find(*id);
        if (it == slots_.end() || !it->second.inherited || it->second.pid <= 0) {
            upgrade_->queue.nothing_to_do(); // its old child died meanwhile
            continue;
        }
        begin_handover(it->second); // may fail at once, and finish the upgrade
        if (!upgrade_) {
            return;
        }
    }
    if (upgrade_->queue.finished()) {
        finish_upgrade();
    }
}

void Supervisor::begin_handover(Slot& slot) {
    auto old = std::make_unique<Slot::Outgoing>();
    old->pid = slot.pid;
    old->channel = std::move(slot.channel);
    old->link_up = slot.link_up;
    slot.old = std::move(old);
    slot.inherited = false;
    slot.pid = 0;
    slot.link_up = false;
    spawn(slot);
    if (slot.pid <= 0) { // fork failed: spawn() scheduled a restart
        if (slot.restart_timer) {
            slot.restart_timer->cancel();
        }
        slot.restarts.forget();
        handover_failed(slot, "cannot start its new child");
        return;
    }
    Slot* sp = &slot;
    slot.handover_timer = std::make_unique<Timer>(loop_, [this, sp] {
        if (!sp->old) {
            return;
        }
        if (!sp->old->handed) {
            const pid_t fresh = std::exchange(sp->pid, 0);
            if (fresh > 0) {
                ::kill(fresh, SIGKILL); // reaped as a child given up on
            }
            sp->channel.reset();
            handover_failed(*sp, "its new child's link was not up within " +
                                     std::to_string(static_cast<int>(handover_timeout)) + " s");
        } else {
            lg().warn("Old child {} for {} did not finish in time: killing it", sp->old->pid,
                      sp->peer.id);
            ::kill(sp->old->pid, SIGKILL);
        }
    });
    if (!slot.old->link_up) {
        hand_off_old(slot); // it serves nothing: the new child takes over when it can
    } else {
        slot.handover_timer->arm_in(seconds(handover_timeout));
    }
}

void Supervisor::hand_off_old(Slot& slot) {
    auto& old = *slot.old;
    old.handed = true;
    if (!old.channel || !old.channel->send(ipc::Type::handoff)) {
        ::kill(old.pid, SIGTERM);
    }
    // It answers or times out what it holds (--request-timeout) before it
    // exits: killed only once that is well over.
    if (slot.handover_timer) {
        slot.handover_timer->arm_in(
            seconds(s_.opts.request_timeout + drain_grace + kill_margin + 1.0));
    }
}

// The new child is gone (or given up on): the old one stays the peer's.
void Supervisor::handover_failed(Slot& slot, const std::string& why) {
    auto old = std::move(slot.old);
    slot.handover_timer.reset();
    slot.pid = old->pid;
    slot.channel = std::move(old->channel);
    slot.link_up = old->link_up;
    slot.state = SlotState::running;
    slot.inherited = true;
    // The new child may have put its socket at the path before it died.
    if (slot.channel) {
        slot.channel->send(ipc::Type::reclaim);
    }
    log::error_not_critical(lg(), "lonctl upgrade: {} keeps its old child {}: {}", slot.peer.id,
                            slot.pid, why);
    if (upgrade_) {
        upgrade_->queue.failed(slot.peer.id + ": " + why);
        pump_upgrade();
    }
    update_notify();
}

void Supervisor::old_child_exit(Slot& slot, pid_t pid, int status) {
    const bool handed = slot.old->handed;
    slot.old.reset();
    slot.handover_timer.reset();
    if (shutting_down_) {
        maybe_finish_shutdown();
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && handed) {
        lg().info("INFO: Old child {} for {} has handed over and finished", pid, slot.peer.id);
    } else {
        lg().warn("Old child {} for {} ended during its hand-over: {}", pid, slot.peer.id,
                  describe(status));
    }
    if (slot.channel) {
        slot.channel->send(ipc::Type::spool_hint, "*"); // its spool lock is free now
    }
    if (upgrade_) {
        upgrade_->queue.handed();
        pump_upgrade();
    }
}

void Supervisor::finish_upgrade() {
    auto u = std::move(*upgrade_);
    upgrade_.reset();
    const double took = static_cast<double>(wall_ms() - u.started_ms) / 1000.0;
    const auto text = u.queue.outcome(u.from, LONC_VERSION, took);
    if (!u.queue.ok()) {
        log::error_not_critical(lg(), "lonctl upgrade: {}", text);
    } else {
        lg().info("INFO: lonctl upgrade: {}", text);
    }
    if (u.waiter) {
        control_.answer(*u.waiter, verdict(u.queue.ok() ? words::upgraded : words::failed, text));
    }
    log::set_status("Sleeping");
    notifier_.ready();
    update_notify();
    run_pending_reloads();
}

// ------------------------------------------------------------------ spool

// A delayed message appeared (spool_watch.hpp): its host's child looks now.
void Supervisor::on_spool_hint(std::string_view host, std::string_view name) {
    if (host.empty()) {
        for (auto& [id, slot] : slots_) {
            if (slot.channel) {
                slot.channel->send(ipc::Type::spool_hint, name);
            }
        }
        return;
    }
    const auto it = slots_.find(std::string(host));
    if (it != slots_.end() && it->second.channel && it->second.state != SlotState::draining) {
        it->second.channel->send(ipc::Type::spool_hint, name);
    }
}

void Supervisor::update_notify() {
    std::size_t up = 0;
    for (const auto& [id, slot] : slots_) {
        up += slot.link_up ? 1 : 0;
    }
    notifier_.status(std::to_string(up) + " of " + std::to_string(slots_.size()) + " peers up");
}

} // namespace

int run_supervisor(SupervisorSetup setup) {
    Supervisor sup(std::move(setup));
    return sup.run();
}

} // namespace lonc
