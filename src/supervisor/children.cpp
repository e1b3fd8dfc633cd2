#include "lonc/supervisor/children.hpp"

#include "lonc/relay/child.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"
#include "lonc/runtime/signals.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("supervisor");
}

// The forked child: shed everything of the parent's and run the worker.
[[noreturn]] void become_child(const Settings& settings, const Peer& peer, const Peer& self,
                               const Options& opts, bool successor, UniqueFd channel) {
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
    ChildSetup setup{settings, peer, self, opts, 3, successor};
    const int code = run_child(setup);
    std::exit(code);
}

} // namespace

std::string describe_exit(int status) {
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

ChildSpawn fork_child(const Settings& settings, const Peer& peer, const Peer& self,
                      const Options& opts, bool successor) {
    ChildSpawn out;
    std::pair<UniqueFd, UniqueFd> ends;
    try {
        ends = ipc::make_pair();
    } catch (const std::system_error& e) {
        out.error = e.what();
        return out;
    }
    auto& [parent_end, child_end] = ends;
    const pid_t pid = ::fork();
    if (pid < 0) {
        out.error = std::string("fork: ") + std::strerror(errno);
        return out;
    }
    if (pid == 0) {
        become_child(settings, peer, self, opts, successor, std::move(child_end));
    }
    out.pid = pid;
    out.channel = std::move(parent_end);
    return out;
}

Children::Children(EventLoop& loop, const Options& opts, const Config& config,
                   ChildrenEvents& events, ChildOps ops)
    : loop_(loop), opts_(opts), config_(config), events_(events), ops_(std::move(ops)),
      kill_timer_(loop, [this] {
          for (const auto& [pid, id] : pids_) {
              lg().warn("Child {} for {} did not finish in time: killing it", pid, id);
              ops_.signal(pid, SIGKILL);
          }
      }) {}

Children::~Children() = default;

std::size_t Children::links_up() const {
    std::size_t up = 0;
    for (const auto& [id, slot] : slots_) {
        up += slot.link_up ? 1 : 0;
    }
    return up;
}

std::optional<std::string> Children::draining() const {
    for (const auto& [id, slot] : slots_) {
        if (slot.state == SlotState::draining) {
            return id;
        }
    }
    return std::nullopt;
}

// ---------------------------------------------------------------- peers

bool Children::has_child(const std::string& id) const {
    const auto it = slots_.find(id);
    return it != slots_.end() && it->second.pid > 0;
}

bool Children::add(const Peer& peer) {
    if (has_child(peer.id)) {
        return false; // an old binary's child, adopted
    }
    auto& slot = slots_[peer.id];
    slot.peer = peer;
    slot.state = SlotState::probing;
    events_.probe(slot.peer);
    return true;
}

void Children::probed(const std::string& id, bool reachable, const std::string& why) {
    const auto it = slots_.find(id);
    if (it == slots_.end() || stopping_) {
        return;
    }
    auto& slot = it->second;
    if (slot.state != SlotState::probing && slot.state != SlotState::unreachable) {
        return;
    }
    if (reachable) {
        if (slot.state == SlotState::unreachable) {
            lg().info("INFO: {} answers again ({})", id, why);
        }
        slot.unreachable_logged = false;
        spawn(slot);
    } else {
        slot.state = SlotState::unreachable;
        if (!slot.unreachable_logged) {
            lg().warn("{} ({}) is unreachable: {}; probing again every {} s", id, slot.peer.ip, why,
                      opts_.reprobe_interval);
            slot.unreachable_logged = true;
        }
    }
}

void Children::reprobe() {
    for (auto& [id, slot] : slots_) {
        if (slot.state == SlotState::unreachable) {
            events_.probe(slot.peer);
        }
    }
}

void Children::keep(const Peer& peer) {
    slots_.at(peer.id).peer = peer;
}

void Children::retire(const std::string& id) {
    auto& slot = slots_.at(id);
    slot.successor.reset();
    if (slot.restart_timer) {
        slot.restart_timer->cancel();
    }
    if (slot.pid > 0) {
        drain_child(slot);
        return;
    }
    slots_.erase(id); // slot is gone
}

void Children::replace(const std::string& id, const Peer& peer) {
    auto& slot = slots_.at(id);
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
    events_.probe(slot.peer);
}

void Children::set_successor(const std::string& id, std::optional<Peer> peer) {
    slots_.at(id).successor = std::move(peer);
}

void Children::drain_child(Slot& slot) {
    slot.state = SlotState::draining;
    slot.link_up = false;
    if (!slot.channel || !slot.channel->send(ipc::Type::drain)) {
        ops_.signal(slot.pid, SIGTERM);
    }
    Slot* sp = &slot;
    slot.kill_timer = std::make_unique<Timer>(loop_, [this, sp] {
        if (sp->pid > 0) {
            lg().warn("Child {} for {} did not finish in time: killing it", sp->pid, sp->peer.id);
            ops_.signal(sp->pid, SIGKILL);
        }
    });
    slot.kill_timer->arm_in(seconds(drain_grace + kill_margin));
    events_.links_changed();
}

// ---------------------------------------------------------- the children

void Children::spawn(Slot& slot) {
    lg().info("Attempting to start child for server {}", slot.peer.id);
    auto made = ops_.spawn(slot.peer, slot.old != nullptr);
    if (made.pid <= 0) {
        // Out of descriptors or processes: counted as an attempt, so the
        // retry backs off (and the peer is skipped after --max-attempts)
        // instead of taking the supervisor down or spinning.
        const auto n = slot.restarts.died(loop_.now());
        lg().error("Cannot start a child for {}: {} ({} of {} attempts)", slot.peer.id, made.error,
                   n, opts_.max_attempts);
        slot.state = SlotState::restarting;
        schedule_restart(slot);
        return;
    }
    ++slot.starts;
    slot.pid = made.pid;
    slot.state = SlotState::running;
    slot.link_up = false;
    slot.report = {};
    pids_[made.pid] = slot.peer.id;
    slot.channel = channel_to(slot, made.pid, std::move(made.channel));
}

// Messages are told apart by the child's pid: during an upgrade a slot has
// two children, and a channel outlives its move to Slot::old.
std::unique_ptr<ipc::Channel> Children::channel_to(Slot& slot, pid_t pid, UniqueFd fd) {
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

void Children::on_child_message(Slot& slot, pid_t from, const ipc::Message& msg) {
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
        events_.report_arrived(slot.peer.id);
        break;
    }
    case ipc::Type::link_state:
        slot.link_up = parse_link_state(msg.payload) == LinkState::up;
        events_.links_changed();
        if (slot.link_up && slot.old && !slot.old->handed) {
            hand_off_old(slot); // the new child holds the socket path now
        }
        break;
    default:
        lg().warn("Unexpected message from child {} for {}", slot.pid, slot.peer.id);
        break;
    }
}

void Children::child_exited(pid_t pid, int status) {
    const auto it = pids_.find(pid);
    if (it == pids_.end()) {
        return; // not one of ours (a mailer, say)
    }
    const std::string id = it->second;
    pids_.erase(it);
    const auto sit = slots_.find(id);
    if (sit == slots_.end()) {
        maybe_all_gone();
        return;
    }
    auto& slot = sit->second;
    if (slot.old && slot.old->pid == pid) {
        old_child_exit(slot, pid, status);
        return;
    }
    if (pid != slot.pid) { // a new child an upgrade gave up on
        maybe_all_gone();
        return;
    }
    slot.inherited = false;
    if (slot.old && !slot.old->handed && !stopping_) {
        // The new binary's child died before taking over: the old one stays.
        slot.channel.reset();
        slot.pid = 0;
        slot.link_up = false;
        handover_failed(slot, "its new child " + std::to_string(pid) + " ended (" +
                                  describe_exit(status) + ")");
        return;
    }
    slot.channel.reset();
    slot.pid = 0;
    slot.link_up = false;
    (void)remove_dead_socket(config_.settings->socket_path(id)); // the dead child's, if any
    events_.links_changed();
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (stopping_) {
        if (!clean) {
            lg().warn("Child {} for server {} ended: {}", pid, id, describe_exit(status));
        }
        maybe_all_gone();
        return;
    }
    if (slot.state == SlotState::draining) {
        // Retired by a reload: not a death, nothing to restart.
        slot.kill_timer.reset();
        if (!clean) {
            lg().warn("Child {} for server {} ended: {}", pid, id, describe_exit(status));
        }
        if (!slot.successor) {
            lg().info("INFO: Child {} for removed server {} has finished", pid, id);
            slots_.erase(id);
            events_.links_changed();
            return;
        }
        slot.peer = *std::exchange(slot.successor, std::nullopt);
        slot.restarts.forget();
        slot.unreachable_logged = false;
        slot.state = SlotState::probing;
        lg().info("INFO: Child {} for {} has finished; its new address {} comes next", pid, id,
                  slot.peer.ip);
        events_.probe(slot.peer);
        return;
    }
    const auto n = slot.restarts.died(loop_.now());
    if (clean) {
        lg().info("Child {} for server {} exited ({} of {} attempts)", pid, id, n,
                  opts_.max_attempts);
    } else {
        lg().error("Child {} for server {} died: {} ({} of {} attempts)", pid, id,
                   describe_exit(status), n, opts_.max_attempts);
    }
    schedule_restart(slot);
}

// Keyed by peer: restarting one child never touches another.
void Children::schedule_restart(Slot& slot) {
    if (!slot.restart_timer) {
        Slot* sp = &slot;
        slot.restart_timer = std::make_unique<Timer>(loop_, [this, sp] {
            if (stopping_) {
                return;
            }
            if (sp->state == SlotState::skipped) {
                lg().info("INFO: {} quiet for {} minutes: trying again", sp->peer.id,
                          std::chrono::duration_cast<std::chrono::minutes>(RestartPolicy::window)
                              .count());
                sp->restarts.forget();
            }
            lg().info("INFO: Trying to reconnect for {} ({} of {} attempts)", sp->peer.id,
                      sp->restarts.count() + 1, opts_.max_attempts);
            spawn(*sp);
        });
    }
    slot.restart_timer->arm_at(slot.restarts.next_start(loop_.now(), opts_.max_attempts));
    if (slot.restarts.skipped(opts_.max_attempts)) {
        slot.state = SlotState::skipped;
        log_skipped();
        return;
    }
    slot.state = SlotState::restarting;
}

void Children::log_skipped() {
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

bool Children::wake(const std::string& id, ipc::Type running) {
    return wake(slots_.at(id), running);
}

bool Children::wake(Slot& slot, ipc::Type running) {
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
        events_.probe(slot.peer);
        return true;
    case SlotState::probing:
    case SlotState::draining:
        return true;
    }
    return true;
}

void Children::retry_all() {
    for (auto& [id, slot] : slots_) {
        if (slot.state != SlotState::running || !slot.link_up) {
            (void)wake(slot, ipc::Type::retry); // links that are up are untouched
        }
        slot.restarts.forget();
    }
}

std::size_t Children::ask_status(std::uint64_t generation) {
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

bool Children::all_answered(std::uint64_t generation) const {
    for (const auto& [id, s] : slots_) {
        if (s.state == SlotState::running && s.channel && s.report.generation != generation) {
            return false;
        }
    }
    return true;
}

void Children::send_options(const std::string& text) {
    for (auto& [id, slot] : slots_) {
        if (slot.state == SlotState::running && slot.channel &&
            !slot.channel->send_or_queue(ipc::Type::options, text)) {
            lg().warn("Could not pass the new options to child {} for {}", slot.pid, id);
        }
    }
}

void Children::spool_hint(std::string_view host, std::string_view name) {
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

// ------------------------------------------------------------- shutdown

void Children::stop_all() {
    stopping_ = true;
    for (auto& [id, slot] : slots_) {
        if (slot.restart_timer) {
            slot.restart_timer->cancel();
        }
        slot.kill_timer.reset(); // kill_timer_ covers every child now
        slot.handover_timer.reset();
        if (slot.pid > 0) {
            if (!slot.channel || !slot.channel->send(ipc::Type::drain)) {
                ops_.signal(slot.pid, SIGTERM);
            }
        }
        if (slot.old && (!slot.old->channel || !slot.old->channel->send(ipc::Type::drain))) {
            ops_.signal(slot.old->pid, SIGTERM);
        }
    }
    kill_timer_.arm_in(seconds(drain_grace + kill_margin));
}

void Children::kill_all_now() {
    kill_timer_.cancel();
    for (const auto& [pid, id] : pids_) {
        ops_.signal(pid, SIGKILL);
    }
}

void Children::maybe_all_gone() {
    if (stopping_ && pids_.empty()) {
        kill_timer_.cancel();
        events_.all_gone();
    }
}

} // namespace lonc
