// lonctl upgrade, as the supervisor runs it (upgrade.hpp has the pieces:
// the check, the exec, the hand-over queue). In the old binary: check the
// new one, then execute it, handing over the pid file, the waiting lonctl
// and the children's socketpairs. In the new one: adopt those children and
// hand each peer over to a new child (Children::begin_handover),
// handover_window peers at a time, then answer the waiting lonctl.
#pragma once

#include "lonc/runtime/event_loop.hpp"
#include "lonc/runtime/notify.hpp"
#include "lonc/supervisor/children.hpp"
#include "lonc/supervisor/control.hpp"
#include "lonc/supervisor/supervisor.hpp"
#include "lonc/supervisor/upgrade.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace lonc {

// lonctl upgrade: the new binary's check may take this long; this many
// peers are handed over at a time (children.hpp: handover_timeout).
inline constexpr double check_timeout = 30.0;
inline constexpr std::size_t handover_window = 8;

// What an upgrade needs to know of, and tells, the supervisor.
class UpgradeHost {
public:
    // The first probes are done.
    [[nodiscard]] virtual bool ready() const = 0;
    [[nodiscard]] virtual bool stopping() const = 0;
    // Peers came or went, or links changed (the notifier's status).
    virtual void peers_changed() = 0;
    // The upgrade is over: reloads that waited for it may run.
    virtual void upgrade_finished() = 0;

protected:
    ~UpgradeHost() = default;
};

class UpgradeRun {
public:
    // setup: the supervisor's (exe, argv, pid file, options, configuration).
    UpgradeRun(EventLoop& loop, const SupervisorSetup& setup, Children& children,
               ControlServer& control, Notifier& notifier, UpgradeHost& host);

    // lonctl upgrade from waiter: rejected, kept until the first probes
    // are done, or the new binary's check starts.
    void request(ControlServer::ConnId waiter);
    // The first probes are done: the requests kept meanwhile.
    void start_pending();
    // The check's child was reaped (by the supervisor's waitpid(-1)).
    bool reaped(pid_t pid, int status);

    // In the new binary: takes the old one's children.
    void adopt(Handover h);
    // Starts the hand-overs the window allows; answers lonctl once all
    // are over.
    void pump();
    // Children: id's hand-over is over.
    void handover_ended(const std::string& id, const std::optional<std::string>& failure);
    // Handing over (reloads wait).
    [[nodiscard]] bool under_way() const noexcept { return run_.has_value(); }

    // Shutdown: the check is killed; waiting lonctls see the socket close.
    void stop();

private:
    void reject(ControlServer::ConnId waiter, const std::string& why);
    void exec(ControlServer::ConnId waiter, CheckVerdict verdict, const std::string& output);
    void finish();

    EventLoop& loop_;
    const SupervisorSetup& s_;
    Children& children_;
    ControlServer& control_;
    Notifier& notifier_;
    UpgradeHost& host_;

    struct Run {
        std::optional<ControlServer::ConnId> waiter;
        std::string from;
        std::int64_t started_ms = 0;
        HandoverQueue queue;
    };
    std::optional<Run> run_;
    std::unique_ptr<BinaryCheck> check_;         // the check of the new binary
    std::vector<ControlServer::ConnId> pending_; // asked for while starting
};

} // namespace lonc
