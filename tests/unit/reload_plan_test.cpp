// The supervisor's reload decisions: what needs a restart, which options
// changed and whether children hear of them, and what happens to each peer.
#include "lonc/supervisor/reload_plan.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lonc {
namespace {

Peer peer(const std::string& id, const std::string& ip) {
    Peer p;
    p.id = id;
    p.domain = "dom";
    p.role = "library";
    p.hostname = id + ".example.invalid";
    p.ip = ip;
    return p;
}

Config config(const std::vector<Peer>& peers, std::uint16_t port = 5663) {
    Config c;
    Settings s;
    s.host_id = "h0";
    s.lond_port = port;
    s.daemons = "/home/httpd/perl";
    s.tab_dir = "/home/httpd/lonTabs";
    s.sock_dir = "/home/httpd/sockets";
    s.doc_root = "/home/httpd/html";
    c.settings = s;
    c.hosts.peers = peers;
    return c;
}

const std::vector<Peer> three = {peer("h0", "127.0.0.10"), peer("h1", "127.0.0.11"),
                                 peer("h2", "127.0.0.12")};

// Slots of a running supervisor for these peers (none draining).
std::vector<SlotView> running(const std::vector<Peer>& peers) {
    std::vector<SlotView> out;
    out.reserve(peers.size());
    for (const auto& p : peers) {
        out.push_back({p.id, p.ip, false, std::nullopt});
    }
    return out;
}

std::vector<std::pair<std::string, PeerStep>> steps(const PeerPlan& plan) {
    std::vector<std::pair<std::string, PeerStep>> out;
    for (const auto& a : plan.actions) {
        out.emplace_back(a.id, a.step);
    }
    return out;
}

using Steps = std::vector<std::pair<std::string, PeerStep>>;

TEST(ReloadPlan, SameConfigurationChangesNothing) {
    const Options opts;
    const auto cfg = config(three);
    EXPECT_TRUE(restart_reasons({opts, cfg}, {opts, cfg}).empty());
    const auto options = diff_options(opts, opts);
    EXPECT_TRUE(options.lines.empty());
    EXPECT_FALSE(options.for_children);
    const auto plan = plan_peers(running(three), three, false);
    EXPECT_EQ(steps(plan),
              (Steps{{"h0", PeerStep::keep}, {"h1", PeerStep::keep}, {"h2", PeerStep::keep}}));
    EXPECT_EQ(summary(plan, options), "nothing changed (3 peers unchanged)");
}

TEST(ReloadPlan, PeersAddedRemovedChangedUnchanged) {
    auto next = three;
    next.erase(next.begin() + 1);             // h1 removed
    next[1].ip = "127.0.0.22";                // h2 moved
    next.push_back(peer("h3", "127.0.0.13")); // h3 added
    next[0].hostname = "renamed.example.invalid";
    const auto plan = plan_peers(running(three), next, false);
    EXPECT_EQ(steps(plan), (Steps{{"h0", PeerStep::keep},
                                  {"h1", PeerStep::retire},
                                  {"h2", PeerStep::replace},
                                  {"h3", PeerStep::start}}));
    EXPECT_EQ(plan.actions[0].peer->hostname, "renamed.example.invalid");
    EXPECT_FALSE(plan.actions[1].peer.has_value());
    EXPECT_EQ(plan.actions[2].peer->ip, "127.0.0.22");
    EXPECT_EQ(plan.actions[3].peer->ip, "127.0.0.13");
    EXPECT_EQ(plan.added, std::vector<std::string>{"h3"});
    EXPECT_EQ(plan.removed, std::vector<std::string>{"h1"});
    EXPECT_EQ(plan.changed, std::vector<std::string>{"h2 (127.0.0.12 -> 127.0.0.22)"});
    EXPECT_EQ(plan.unchanged, 1U);
    EXPECT_EQ(summary(plan, {}), "peers added 1 (h3), removed 1 (h1), changed 1 (h2 (127.0.0.12 "
                                 "-> 127.0.0.22)), unchanged 1; options unchanged");
}

TEST(ReloadPlan, NewLondPortChangesEveryPeer) {
    const auto plan = plan_peers(running(three), three, true);
    EXPECT_EQ(
        steps(plan),
        (Steps{{"h0", PeerStep::replace}, {"h1", PeerStep::replace}, {"h2", PeerStep::replace}}));
    EXPECT_EQ(plan.changed.size(), 3U);
    EXPECT_EQ(plan.changed[1], "h1 (127.0.0.11 -> 127.0.0.11)");
    EXPECT_EQ(plan.unchanged, 0U);
}

TEST(ReloadPlan, DrainingSlotsGetTheirSuccessorDecidedAgain) {
    // h1 drains with nothing after it (removed earlier), h2 drains with a
    // successor at .22 (moved earlier).
    std::vector<SlotView> slots = running(three);
    slots[1].draining = true;
    slots[2].draining = true;
    slots[2].successor = peer("h2", "127.0.0.22");

    // Both back as they are in hosts.tab now: h1 added again, h2's
    // successor moves on to .32.
    auto next = three;
    next[2].ip = "127.0.0.32";
    auto plan = plan_peers(slots, next, false);
    EXPECT_EQ(steps(plan), (Steps{{"h0", PeerStep::keep},
                                  {"h1", PeerStep::set_successor},
                                  {"h2", PeerStep::set_successor}}));
    EXPECT_EQ(plan.actions[1].peer->ip, "127.0.0.11");
    EXPECT_EQ(plan.added, std::vector<std::string>{"h1"});
    EXPECT_EQ(plan.changed, std::vector<std::string>{"h2 (127.0.0.22 -> 127.0.0.32)"});
    EXPECT_EQ(plan.unchanged, 1U);

    // The successor unchanged counts as unchanged.
    next[2].ip = "127.0.0.22";
    plan = plan_peers(slots, next, false);
    EXPECT_EQ(plan.unchanged, 2U);
    EXPECT_TRUE(plan.changed.empty());

    // Both gone: h2's successor is dropped (a removal), h1 had none.
    plan = plan_peers(slots, {three[0]}, false);
    EXPECT_EQ(steps(plan), (Steps{{"h0", PeerStep::keep},
                                  {"h1", PeerStep::drop_successor},
                                  {"h2", PeerStep::drop_successor}}));
    EXPECT_EQ(plan.removed, std::vector<std::string>{"h2"});
    EXPECT_TRUE(plan.added.empty());
}

TEST(ReloadPlan, NewPeersStartInFileOrderAfterTheSlots) {
    const std::vector<Peer> next = {peer("z9", "127.0.0.19"), three[0], peer("a1", "127.0.0.21")};
    const auto plan = plan_peers(running({three[0]}), next, false);
    EXPECT_EQ(steps(plan),
              (Steps{{"h0", PeerStep::keep}, {"z9", PeerStep::start}, {"a1", PeerStep::start}}));
    EXPECT_EQ(plan.added, (std::vector<std::string>{"z9", "a1"}));
}

TEST(ReloadPlan, OptionsChildrenTakeLive) {
    const Options before;
    Options after = before;
    after.request_timeout = 30;
    after.probe_timeout = 3; // the supervisor's own
    const auto changes = diff_options(before, after);
    EXPECT_EQ(changes.lines,
              (std::vector<std::string>{"request-timeout 300 -> 30", "probe-timeout 20 -> 3"}));
    EXPECT_TRUE(changes.for_children);
    EXPECT_TRUE(restart_reasons({before, config(three)}, {after, config(three)}).empty());

    Options parent_only = before;
    parent_only.max_attempts = 9;
    EXPECT_FALSE(diff_options(before, parent_only).for_children);
    EXPECT_EQ(summary(plan_peers(running(three), three, false), diff_options(before, parent_only)),
              "peers added 0, removed 0, changed 0, unchanged 3; options: max-attempts 5 -> 9");
}

TEST(ReloadPlan, RestartNeededIsRejectedWithReasons) {
    const Options opts;
    const auto now = config(three);
    auto next = config(three);
    next.settings->host_id = "h1";
    next.settings->sock_dir = "/run/lonc";
    Options next_opts = opts;
    next_opts.connections = 2;
    next_opts.user = "nobody";
    const auto reasons = restart_reasons({opts, now}, {next_opts, next});
    const std::string conf = opts.config.string();
    const std::string own = "/home/httpd/lonTabs/hosts.tab: this host's address changed from "
                            "'127.0.0.10' to '127.0.0.11': that needs a restart of lonc";
    EXPECT_EQ(
        reasons,
        (std::vector<std::string>{
            conf + ": lonHostID changed from 'h0' to 'h1': that needs a restart of lonc",
            conf + ": lonSockDir changed from '/home/httpd/sockets' to '/run/lonc': that "
                   "needs a restart of lonc",
            own, "options: --user changed from 'www' to 'nobody': that needs a restart of lonc",
            "options: --connections changed from '1' to '2': that needs a restart of "
            "lonc"}));

    // This host's own address moving needs a restart; londPort does not.
    auto moved = config(three, 5664);
    moved.hosts.peers[0].ip = "127.0.0.50";
    ASSERT_EQ(restart_reasons({opts, now}, {opts, moved}).size(), 1U);
    EXPECT_NE(restart_reasons({opts, now}, {opts, moved})[0].find("this host's address"),
              std::string::npos);
}

} // namespace
} // namespace lonc
