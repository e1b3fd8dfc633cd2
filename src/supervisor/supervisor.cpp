#include "lonc/supervisor/supervisor.hpp"

#include "lonc/core/child_report.hpp"
#include "lonc/core/clock_text.hpp"
#include "lonc/core/control_words.hpp"
#include "lonc/relay/spooler.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/runtime/ipc.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"
#include "lonc/runtime/notify.hpp"
#include "lonc/runtime/signals.hpp"
#include "lonc/supervisor/children.hpp"
#include "lonc/supervisor/control.hpp"
#include "lonc/supervisor/metrics.hpp"
#include "lonc/supervisor/probe.hpp"
#include "lonc/supervisor/reload_plan.hpp"
#include "lonc/supervisor/reloader.hpp"
#include "lonc/supervisor/spool_watch.hpp"
#include "lonc/supervisor/startup.hpp"
#include "lonc/supervisor/status.hpp"
#include "lonc/supervisor/status_round.hpp"
#include "lonc/supervisor/upgrade_run.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <optional>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("supervisor");
}

// Status: how long to wait for the children's answers.
constexpr double status_wait = 1.0;

// An answer of one line.
std::string line_of(std::string_view word) {
    return std::string(word) + "\n";
}

class Supervisor final : private ChildrenEvents, private UpgradeHost, private ReloadHost {
public:
    explicit Supervisor(SupervisorSetup setup);
    int run();

private:
    void start_peers();
    void on_probe(const std::string& id, bool reachable, const std::string& why);
    void reap();
    void on_signal(const signalfd_siginfo& si);
    void on_usr1();
    void apply_step(const PeerAction& a);
    void finish_departed();
    void begin_shutdown();
    void maybe_finish_shutdown();
    void finish_shutdown();
    void write_status(std::uint64_t generation, unsigned want);
    void on_control(ControlServer::ConnId id, std::string_view line);
    [[nodiscard]] std::string reconnect(const std::string& id);
    void on_reprobe();
    void update_notify();

    // ChildrenEvents
    void probe(const Peer& peer) override { prober_.probe(peer); }
    void report_arrived(const std::string& id) override;
    void links_changed() override { update_notify(); }
    void handover_ended(const std::string& id, const std::optional<std::string>& failure) override {
        upgrade_.handover_ended(id, failure);
    }
    void all_gone() override { finish_shutdown(); }

    // UpgradeHost and ReloadHost
    [[nodiscard]] bool ready() const override { return ready_; }
    [[nodiscard]] bool stopping() const override { return shutting_down_; }
    void peers_changed() override { update_notify(); }
    void upgrade_finished() override { reloader_.run_pending(); }
    [[nodiscard]] bool upgrading() const override { return upgrade_.under_way(); }
    std::string apply(Loaded next) override;
    void reloaded() override {
        update_notify();
        status_.request(StatusRound::files);
    }

    SupervisorSetup s_;
    const Settings& settings() const { return *s_.config.settings; }
    EventLoop loop_;
    Children children_;
    Prober prober_;
    SignalReader signals_;
    Timer reprobe_timer_;
    Notifier notifier_;
    std::size_t initial_probes_ = 0;
    bool ready_ = false;

    bool shutting_down_ = false;

    StatusRound status_;
    std::vector<ControlServer::ConnId> status_waiters_; // lonctl status
    Timer metrics_timer_;
    std::time_t start_time_ = std::time(nullptr);
    ControlServer control_;

    SpoolWatch spool_watch_;
    UpgradeRun upgrade_; // lonctl upgrade
    Reloader reloader_;  // HUP, USR2, lonctl reload
};

Supervisor::Supervisor(SupervisorSetup setup)
    : s_(std::move(setup)),
      children_(loop_, s_.opts, s_.config, *this,
                ChildOps{[this](const Peer& peer, bool successor) {
                             return fork_child(settings(), peer, *s_.config.own_host(), s_.opts,
                                               successor);
                         },
                         [](pid_t pid, int sig) { ::kill(pid, sig); }}),
      prober_(loop_, s_.config.settings->lond_port, s_.opts.probe_timeout,
              [this](const std::string& id, bool up, const std::string& why) {
                  on_probe(id, up, why);
              }),
      signals_(loop_, {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD},
               [this](const signalfd_siginfo& si) { on_signal(si); }),
      reprobe_timer_(loop_, [this] { on_reprobe(); }),
      status_(
          loop_, status_wait, [this](std::uint64_t gen) { return children_.ask_status(gen); },
          [this](std::uint64_t gen, unsigned want) { write_status(gen, want); }),
      metrics_timer_(loop_,
                     [this] {
                         metrics_timer_.arm_in(seconds(s_.opts.metrics_interval));
                         status_.request(StatusRound::metrics);
                     }),
      control_(loop_, s_.config.settings->control_path(),
               [this](ControlServer::ConnId id, std::string_view line) { on_control(id, line); }),
      spool_watch_(loop_, s_.config.settings->spool_dir(),
                   [this](std::string_view host, std::string_view name) {
                       children_.spool_hint(host, name);
                   }),
      upgrade_(loop_, s_, children_, control_, notifier_, *this),
      reloader_(s_, control_, notifier_, *this, start_time_) {}

int Supervisor::run() {
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
        upgrade_.adopt(std::move(*std::exchange(s_.handover, std::nullopt)));
    }
    start_peers();
    upgrade_.pump();
    reprobe_timer_.arm_in(seconds(s_.opts.reprobe_interval));
    const int code = loop_.run();
    return code;
}

// ---------------------------------------------------------------- peers

void Supervisor::start_peers() {
    log::set_status("Probing peers");
    finish_departed();
    // Counted before any probe starts, over a copy: were a probe to answer
    // at once, the count would not reach 0 early, and a reload it set off
    // would not replace the list under this loop.
    const auto peers = s_.config.hosts.peers;
    initial_probes_ = static_cast<std::size_t>(std::count_if(
        peers.begin(), peers.end(), [&](const Peer& p) { return !children_.has_child(p.id); }));
    for (const auto& peer : peers) {
        (void)children_.add(peer); // not probed if adopted from the old binary
    }
    if (initial_probes_ == 0) {
        on_probe("", false, "");
    }
}

void Supervisor::on_probe(const std::string& id, bool reachable, const std::string& why) {
    children_.probed(id, reachable, why);
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
        if (!upgrade_.under_way()) {
            reloader_.run_pending();
        }
        upgrade_.start_pending();
    }
}

void Supervisor::on_reprobe() {
    reprobe_timer_.arm_in(seconds(s_.opts.reprobe_interval));
    children_.reprobe();
    if (!spool_watch_.watching()) {
        (void)spool_watch_.start();
    }
}

void Supervisor::report_arrived(const std::string& /*id*/) {
    if (status_.collecting()) {
        status_.answered(children_.all_answered(status_.generation()));
    }
}

void Supervisor::reap() {
    for (;;) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }
        if (!upgrade_.reaped(pid, status)) { // the new binary's check
            children_.child_exited(pid, status);
        }
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
        reloader_.request(si.ssi_signo == SIGHUP ? "HUP" : "USR2");
        break;
    case SIGINT:
    case SIGTERM:
        if (shutting_down_) {
            lg().error("Second {}: exiting now", ::strsignal(static_cast<int>(si.ssi_signo)));
            children_.kill_all_now();
            while (!children_.pids().empty()) {
                int status = 0;
                const pid_t pid = ::waitpid(-1, &status, 0);
                if (pid < 0) {
                    break;
                }
                children_.forget_pid(pid);
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
    children_.retry_all();
    status_.request(StatusRound::files);
}

// ----------------------------------------------------------------- reload

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
    views.reserve(children_.slots().size());
    for (const auto& [id, slot] : children_.slots()) {
        views.push_back({id, slot.peer.ip, slot.state == SlotState::draining, slot.successor});
    }
    const auto plan = plan_peers(views, s_.config.hosts.peers, port_changed);
    for (const auto& a : plan.actions) {
        apply_step(a);
    }
    if (options.for_children) {
        children_.send_options(child_options_text(s_.opts));
    }
    reloader_.peers_removed(plan.removed);
    reloader_.peers_added(plan.added);
    return summary(plan, options);
}

void Supervisor::apply_step(const PeerAction& a) {
    switch (a.step) {
    case PeerStep::start:
        (void)children_.add(*a.peer);
        break;
    case PeerStep::keep:
        children_.keep(*a.peer); // domain, role, hostname: the child has no use for them
        break;
    case PeerStep::retire:
        prober_.cancel(a.id);
        children_.retire(a.id); // may erase the slot
        break;
    case PeerStep::replace:
        prober_.cancel(a.id);
        children_.replace(a.id, *a.peer);
        break;
    case PeerStep::set_successor:
        children_.set_successor(a.id, a.peer);
        break;
    case PeerStep::drop_successor:
        children_.set_successor(a.id, std::nullopt);
        break;
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
    children_.stop_all();
    upgrade_.stop();
    reloader_.drop_pending();
    maybe_finish_shutdown();
}

void Supervisor::maybe_finish_shutdown() {
    if (shutting_down_ && children_.pids().empty()) {
        finish_shutdown();
    }
}

void Supervisor::finish_shutdown() {
    for (const auto& [id, slot] : children_.slots()) {
        (void)remove_dead_socket(settings().socket_path(id));
    }
    s_.pid_file.remove();
    lg().info("Exiting");
    loop_.stop(exit_ok);
}

// ----------------------------------------------------------------- status

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
    for (const auto& [id, slot] : children_.slots()) {
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
    r.reload = reloader_.status_now();
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
        reloader_.request("lonctl reload", id);
        return;
    case Command::Verb::upgrade:
        upgrade_.request(id);
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
    const auto it = children_.slots().find(id);
    if (it == children_.slots().end()) {
        return std::string(words::no_such_host);
    }
    lg().info("INFO: Reconnect requested for {} ({})", id, to_string(it->second.state));
    return std::string(children_.wake(id, ipc::Type::reconnect) ? words::ok
                                                                : words::child_not_answering);
}

void Supervisor::update_notify() {
    notifier_.status(std::to_string(children_.links_up()) + " of " +
                     std::to_string(children_.slots().size()) + " peers up");
}

} // namespace

int run_supervisor(SupervisorSetup setup) {
    Supervisor sup(std::move(setup));
    return sup.run();
}

} // namespace lonc
