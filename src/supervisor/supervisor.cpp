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
#include "lonc/supervisor/children.hpp"
#include "lonc/supervisor/control.hpp"
#include "lonc/supervisor/metrics.hpp"
#include "lonc/supervisor/probe.hpp"
#include "lonc/supervisor/reload_plan.hpp"
#include "lonc/supervisor/restart_policy.hpp"
#include "lonc/supervisor/spool_watch.hpp"
#include "lonc/supervisor/startup.hpp"
#include "lonc/supervisor/status.hpp"
#include "lonc/supervisor/status_round.hpp"
#include "lonc/supervisor/upgrade_run.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("supervisor");
}

// Status: how long to wait for the children's answers.
constexpr double status_wait = 1.0;

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

class Supervisor final : private ChildrenEvents, private UpgradeHost {
public:
    explicit Supervisor(SupervisorSetup setup);
    int run();

private:
    void start_peers();
    void on_probe(const std::string& id, bool reachable, const std::string& why);
    void run_pending_reloads();
    void reap();
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
    void warn_undeliverable(const std::vector<std::string>& removed);
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

    // UpgradeHost
    [[nodiscard]] bool ready() const override { return ready_; }
    [[nodiscard]] bool stopping() const override { return shutting_down_; }
    void peers_changed() override { update_notify(); }
    void upgrade_finished() override { run_pending_reloads(); }

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

    ReloadStatus reload_;
    std::set<std::string> removed_hosts_; // their delayed files are listed in status
    std::vector<std::pair<std::string, std::optional<ControlServer::ConnId>>> pending_reloads_;

    StatusRound status_;
    std::vector<ControlServer::ConnId> status_waiters_; // lonctl status
    Timer metrics_timer_;
    std::time_t start_time_ = std::time(nullptr);
    ControlServer control_;

    SpoolWatch spool_watch_;
    UpgradeRun upgrade_; // lonctl upgrade
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
      upgrade_(loop_, s_, children_, control_, notifier_, *this) {}

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
    initial_probes_ = 0;
    for (const auto& peer : s_.config.hosts.peers) {
        if (children_.add(peer)) { // not if adopted from the old binary
            ++initial_probes_;
        }
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
            run_pending_reloads();
        }
        upgrade_.start_pending();
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
        request_reload(si.ssi_signo == SIGHUP ? "HUP" : "USR2");
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
    if (!ready_ || upgrade_.under_way()) {
        lg().info("INFO: {}: reload as soon as the {} done", source,
                  upgrade_.under_way() ? "upgrade is" : "first probes are");
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
    warn_undeliverable(plan.removed);
    for (const auto& id : plan.added) {
        removed_hosts_.erase(id);
    }
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
    children_.stop_all();
    upgrade_.stop();
    pending_reloads_.clear(); // their lonctl sees the control socket close
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
