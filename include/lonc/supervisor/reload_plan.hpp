// What a reload does, decided without doing it: the supervisor's pure
// reload decisions, apart from its event loop, children and timers.
//
// - restart_reasons: why a new configuration cannot be taken by a running
//   lonc (its identity, its directories, options marked Live::restart
//   changed); empty when it can.
// - diff_options: the options whose values differ, and whether running
//   children must be told (an option marked Live::children changed).
// - plan_peers: for every slot the supervisor has (in id order) and every
//   peer of the new hosts.tab, one step: keep a peer's child (address and
//   londPort unchanged), retire it (gone from hosts.tab), replace it (new
//   address or port), set or drop what follows a draining child, start a
//   new peer. Steps come in slot order, then new peers in file order; the
//   supervisor carries them out in that order.
// - summary: the text a reload logs and lonctl prints ("peers added ...").
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/options.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace lonc {

// One side of a reload: the options and configuration before or after.
struct ReloadSide {
    const Options& opts;
    const Config& config; // ok(), with this host in hosts.tab
};

// Why next needs a restart, one sentence each; empty: a reload can take it.
[[nodiscard]] std::vector<std::string> restart_reasons(const ReloadSide& now,
                                                       const ReloadSide& next);

struct OptionChanges {
    std::vector<std::string> lines; // "name old -> new", in option order
    bool for_children = false;      // a Live::children option changed
};

[[nodiscard]] OptionChanges diff_options(const Options& before, const Options& after);

// A slot of the supervisor as the plan sees it.
struct SlotView {
    std::string id;
    std::string ip;                  // the address its child serves (or will)
    bool draining = false;           // its child is on the way out
    std::optional<Peer> successor{}; // draining: what follows it, if anything
};

enum class PeerStep {
    keep,           // same address and port: the child stays; take the new entry
    retire,         // gone from hosts.tab: drain the child, drop the slot
    replace,        // new address or port: a new child after the old one
    set_successor,  // draining: this entry follows it
    drop_successor, // draining and gone from hosts.tab: nothing follows it
    start,          // a new peer: probe it, then start a child
};

struct PeerAction {
    std::string id;
    PeerStep step;
    std::optional<Peer> peer; // the new entry (all steps but retire, drop_successor)
};

struct PeerPlan {
    std::vector<PeerAction> actions;
    // For the summary and the log, as the operator sees them.
    std::vector<std::string> added;   // ids
    std::vector<std::string> removed; // ids
    std::vector<std::string> changed; // "id (old ip -> new ip)"
    std::size_t unchanged = 0;
};

// slots in id order; wanted: the new hosts.tab's peers in file order;
// port_changed: londPort differs (every peer counts as changed).
[[nodiscard]] PeerPlan plan_peers(const std::vector<SlotView>& slots,
                                  const std::vector<Peer>& wanted, bool port_changed);

// "nothing changed (N peers unchanged)" or "peers added 1 (h3), removed 0,
// changed 0, unchanged 2; options unchanged" (or "; options: a 1 -> 2").
[[nodiscard]] std::string summary(const PeerPlan& peers, const OptionChanges& options);

} // namespace lonc
