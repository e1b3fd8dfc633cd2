// Children during lonctl upgrade: the old binary's children adopted, and
// each peer's pair (Slot::old, the new child) through its hand-over.
#include "lonc/runtime/log.hpp"
#include "lonc/supervisor/children.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <string>
#include <sys/wait.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("supervisor");
}

} // namespace

bool Children::adopt(const std::string& id, pid_t pid, UniqueFd channel, bool link_up,
                     const Peer* peer) {
    auto& slot = slots_[id];
    slot.peer = peer != nullptr ? *peer : Peer{id, {}, {}, {}, {}, {}, 0};
    slot.pid = pid;
    slot.state = SlotState::running;
    slot.link_up = link_up;
    slot.starts = 1;
    slot.inherited = true;
    pids_[pid] = id;
    slot.channel = channel_to(slot, pid, std::move(channel));
    if (peer == nullptr) {
        lg().warn("{} is no longer in hosts.tab: its child {} drains and exits", id, pid);
        drain_child(slot);
        return false;
    }
    return true;
}

bool Children::begin_handover(const std::string& id) {
    const auto it = slots_.find(id);
    if (it == slots_.end() || !it->second.inherited || it->second.pid <= 0) {
        return false; // its old child died meanwhile
    }
    auto& slot = it->second;
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
        return true;
    }
    Slot* sp = &slot;
    slot.handover_timer = std::make_unique<Timer>(loop_, [this, sp] {
        if (!sp->old) {
            return;
        }
        if (!sp->old->handed) {
            const pid_t fresh = std::exchange(sp->pid, 0);
            if (fresh > 0) {
                ops_.signal(fresh, SIGKILL); // reaped as a child given up on
            }
            sp->channel.reset();
            handover_failed(*sp, "its new child's link was not up within " +
                                     std::to_string(static_cast<int>(handover_timeout)) + " s");
        } else {
            lg().warn("Old child {} for {} did not finish in time: killing it", sp->old->pid,
                      sp->peer.id);
            ops_.signal(sp->old->pid, SIGKILL);
        }
    });
    if (!slot.old->link_up) {
        hand_off_old(slot); // it serves nothing: the new child takes over when it can
    } else {
        slot.handover_timer->arm_in(seconds(handover_timeout));
    }
    return true;
}

void Children::hand_off_old(Slot& slot) {
    auto& old = *slot.old;
    old.handed = true;
    if (!old.channel || !old.channel->send(ipc::Type::handoff)) {
        ops_.signal(old.pid, SIGTERM);
    }
    // It answers or times out what it holds (--request-timeout) before it
    // exits: killed only once that is well over.
    if (slot.handover_timer) {
        slot.handover_timer->arm_in(
            seconds(opts_.request_timeout + drain_grace + kill_margin + 1.0));
    }
}

// The new child is gone (or given up on): the old one stays the peer's.
void Children::handover_failed(Slot& slot, const std::string& why) {
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
    events_.handover_ended(std::string(slot.peer.id), why); // a copy: the slot may go
    events_.links_changed();
}

void Children::old_child_exit(Slot& slot, pid_t pid, int status) {
    const bool handed = slot.old->handed;
    slot.old.reset();
    slot.handover_timer.reset();
    if (stopping_) {
        maybe_all_gone();
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && handed) {
        lg().info("INFO: Old child {} for {} has handed over and finished", pid, slot.peer.id);
    } else {
        lg().warn("Old child {} for {} ended during its hand-over: {}", pid, slot.peer.id,
                  describe_exit(status));
    }
    if (slot.channel) {
        slot.channel->send(ipc::Type::spool_hint, "*"); // its spool lock is free now
    }
    events_.handover_ended(std::string(slot.peer.id), std::nullopt); // the slot may go
}

} // namespace lonc
