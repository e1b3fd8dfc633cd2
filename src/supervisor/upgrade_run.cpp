#include "lonc/supervisor/upgrade_run.hpp"

#include "lonc/core/control_words.hpp"
#include "lonc/runtime/log.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("supervisor");
}

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
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

} // namespace

UpgradeRun::UpgradeRun(EventLoop& loop, const SupervisorSetup& setup, Children& children,
                       ControlServer& control, Notifier& notifier, UpgradeHost& host)
    : loop_(loop), s_(setup), children_(children), control_(control), notifier_(notifier),
      host_(host) {}

// lonctl upgrade: the binary at setup.exe must pass its own configuration
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

void UpgradeRun::reject(ControlServer::ConnId waiter, const std::string& why) {
    log::error_not_critical(lg(), "lonctl upgrade rejected; nothing changed: {}", why);
    control_.answer(waiter, verdict(words::rejected, why));
}

void UpgradeRun::request(ControlServer::ConnId waiter) {
    if (host_.stopping()) {
        control_.answer(waiter, line_of(words::shutting_down));
        return;
    }
    if (run_ || (check_ && !check_->finished())) {
        reject(waiter, "an upgrade is already under way");
        return;
    }
    if (!host_.ready()) {
        lg().info("INFO: lonctl upgrade: as soon as the first probes are done");
        pending_.push_back(waiter);
        return;
    }
    if (const auto id = children_.draining()) {
        reject(waiter,
               "a reload is still retiring the child for " + *id + "; try again in a few seconds");
        return;
    }
    if (s_.exe.empty()) {
        reject(waiter, "cannot tell which executable lonc was started from");
        return;
    }
    lg().info("INFO: lonctl upgrade: checking {} -t", s_.exe);
    const std::vector<std::string> args(s_.argv.begin() + (s_.argv.empty() ? 0 : 1), s_.argv.end());
    // Through the loop: children are reaped, restarted and answered meanwhile.
    check_ = std::make_unique<BinaryCheck>(
        loop_, s_.exe, args, check_timeout,
        [this, waiter](CheckVerdict v, std::string output) { exec(waiter, v, output); });
}

void UpgradeRun::exec(ControlServer::ConnId waiter, CheckVerdict verdict,
                      const std::string& output) {
    if (verdict == CheckVerdict::failed) {
        std::string said;
        for (const auto& line : split_lines(output)) {
            if (!line.empty()) {
                said += "\n" + log::printable(line, 500);
            }
        }
        reject(waiter, "the configuration check of " + s_.exe + " failed:" + said);
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
    if (const auto id = children_.draining()) {
        reject(waiter,
               "a reload is still retiring the child for " + *id + "; try again in a few seconds");
        return;
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
    for (const auto& [id, slot] : children_.slots()) {
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
    reject(waiter, "cannot execute " + s_.exe + ": " + why);
}

// The new supervisor takes the old one's children as its own.
void UpgradeRun::adopt(Handover h) {
    std::optional<ControlServer::ConnId> waiter;
    if (h.waiter_fd >= 0) {
        ::fcntl(h.waiter_fd, F_SETFD, FD_CLOEXEC);
        waiter = control_.adopt(UniqueFd(h.waiter_fd));
    }
    std::vector<std::string> peers;
    for (auto& c : h.children) {
        ::fcntl(c.fd, F_SETFD, FD_CLOEXEC);
        if (children_.adopt(c.id, c.pid, UniqueFd(c.fd), c.link_up, s_.config.hosts.find(c.id))) {
            peers.push_back(c.id);
        }
    }
    run_.emplace(Run{waiter, h.from_version, h.started_ms,
                     HandoverQueue(std::move(peers), handover_window)});
    host_.peers_changed();
}

void UpgradeRun::pump() {
    if (!run_ || host_.stopping()) {
        return;
    }
    while (const auto id = run_->queue.next()) {
        if (!children_.begin_handover(*id)) {
            run_->queue.nothing_to_do(); // its old child died meanwhile
            continue;
        }
        // It may have failed at once, and finished the upgrade.
        if (!run_) {
            return;
        }
    }
    if (run_->queue.finished()) {
        finish();
    }
}

// A peer's hand-over is over: the next ones start.
void UpgradeRun::handover_ended(const std::string& id, const std::optional<std::string>& failure) {
    if (!run_) {
        return;
    }
    if (failure) {
        run_->queue.failed(id + ": " + *failure);
    } else {
        run_->queue.handed();
    }
    pump();
}

void UpgradeRun::finish() {
    auto u = std::move(*run_);
    run_.reset();
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
    host_.peers_changed();
    host_.upgrade_finished();
}

void UpgradeRun::start_pending() {
    for (const auto waiter : std::exchange(pending_, {})) {
        request(waiter); // the first runs; any other is told one is under way
    }
}

bool UpgradeRun::reaped(pid_t pid, int status) {
    if (!check_ || pid != check_->pid()) {
        return false;
    }
    check_->exited(status);
    return true;
}

void UpgradeRun::stop() {
    run_.reset();   // its lonctl sees the control socket close
    check_.reset(); // a check under way is killed
    pending_.clear();
}

} // namespace lonc
