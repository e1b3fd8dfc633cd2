#include "lonc/supervisor/reload_plan.hpp"

#include <map>
#include <set>

namespace lonc {
namespace {

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) {
        out += (out.empty() ? "" : ", ") + i;
    }
    return out;
}

} // namespace

std::vector<std::string> restart_reasons(const ReloadSide& now, const ReloadSide& next) {
    std::vector<std::string> out;
    const auto& from_settings = *now.config.settings;
    const auto& to_settings = *next.config.settings;
    auto need = [&](const std::string& where, const std::string& what, const std::string& from,
                    const std::string& to) {
        if (from != to) {
            out.push_back(where + ": " + what + " changed from '" + from + "' to '" + to +
                          "': that needs a restart of lonc");
        }
    };
    const auto conf = next.opts.config.string();
    need(conf, "lonHostID", from_settings.host_id, to_settings.host_id);
    need(conf, "lonDaemons", from_settings.daemons.string(), to_settings.daemons.string());
    need(conf, "lonSockDir", from_settings.sock_dir.string(), to_settings.sock_dir.string());
    need(to_settings.hosts_tab().string(), "this host's address", now.config.own_host()->ip,
         next.config.own_host()->ip);
    const auto before = option_values(now.opts);
    const auto after = option_values(next.opts);
    for (std::size_t i = 0; i < before.size() && i < after.size(); ++i) {
        if (before[i].live == Live::restart) {
            need("options", "--" + before[i].name, before[i].value, after[i].value);
        }
    }
    return out;
}

OptionChanges diff_options(const Options& before, const Options& after) {
    OptionChanges out;
    const auto from = option_values(before);
    const auto to = option_values(after);
    for (std::size_t i = 0; i < from.size() && i < to.size(); ++i) {
        if (from[i].value != to[i].value) {
            out.lines.push_back(from[i].name + " " + from[i].value + " -> " + to[i].value);
            out.for_children = out.for_children || from[i].live == Live::children;
        }
    }
    return out;
}

PeerPlan plan_peers(const std::vector<SlotView>& slots, const std::vector<Peer>& wanted,
                    bool port_changed) {
    std::map<std::string, const Peer*> by_id;
    for (const auto& p : wanted) {
        by_id[p.id] = &p; // ids are unique: load_config drops duplicates
    }
    PeerPlan plan;
    std::set<std::string> have;
    for (const auto& slot : slots) {
        const auto w = by_id.find(slot.id);
        const Peer* next = w == by_id.end() ? nullptr : w->second;
        if (slot.draining) {
            // Its child is on the way out; what follows it is decided again.
            have.insert(slot.id);
            if (next == nullptr) {
                if (slot.successor) {
                    plan.removed.push_back(slot.id);
                }
                plan.actions.push_back({slot.id, PeerStep::drop_successor, std::nullopt});
                continue;
            }
            if (!slot.successor) {
                plan.added.push_back(slot.id);
            } else if (slot.successor->ip != next->ip || port_changed) {
                plan.changed.push_back(slot.id + " (" + slot.successor->ip + " -> " + next->ip +
                                       ")");
            } else {
                ++plan.unchanged;
            }
            plan.actions.push_back({slot.id, PeerStep::set_successor, *next});
        } else if (next == nullptr) {
            plan.removed.push_back(slot.id);
            plan.actions.push_back({slot.id, PeerStep::retire, std::nullopt});
        } else if (slot.ip != next->ip || port_changed) {
            have.insert(slot.id);
            plan.changed.push_back(slot.id + " (" + slot.ip + " -> " + next->ip + ")");
            plan.actions.push_back({slot.id, PeerStep::replace, *next});
        } else {
            have.insert(slot.id);
            ++plan.unchanged;
            plan.actions.push_back({slot.id, PeerStep::keep, *next});
        }
    }
    for (const auto& p : wanted) {
        if (have.insert(p.id).second) {
            plan.added.push_back(p.id);
            plan.actions.push_back({p.id, PeerStep::start, p});
        }
    }
    return plan;
}

std::string summary(const PeerPlan& peers, const OptionChanges& options) {
    if (peers.added.empty() && peers.removed.empty() && peers.changed.empty() &&
        options.lines.empty()) {
        return "nothing changed (" + std::to_string(peers.unchanged) + " peers unchanged)";
    }
    auto list = [](const std::vector<std::string>& v) {
        return std::to_string(v.size()) + (v.empty() ? "" : " (" + joined(v) + ")");
    };
    std::string text = "peers added " + list(peers.added) + ", removed " + list(peers.removed) +
                       ", changed " + list(peers.changed) + ", unchanged " +
                       std::to_string(peers.unchanged);
    text += options.lines.empty() ? "; options unchanged" : "; options: " + joined(options.lines);
    return text;
}

} // namespace lonc
