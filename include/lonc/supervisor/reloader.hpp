// A reload (HUP, USR2, lonctl reload), as the supervisor runs it: read the
// whole configuration again (load_configuration), judge it (--check-config
// problems, restart_reasons), have the supervisor apply it, and keep what
// the status files say of it: the last attempt, and the delayed files of
// removed peers that can no longer be delivered. Asked for before the
// first probes are done, or during lonctl upgrade, it waits; those that
// waited are done as one reload.
#pragma once

#include "lonc/runtime/notify.hpp"
#include "lonc/supervisor/control.hpp"
#include "lonc/supervisor/startup.hpp"
#include "lonc/supervisor/status.hpp"
#include "lonc/supervisor/supervisor.hpp"

#include <ctime>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace lonc {

// What a reload needs to know of, and have done by, the supervisor.
class ReloadHost {
public:
    // The first probes are done.
    [[nodiscard]] virtual bool ready() const = 0;
    [[nodiscard]] virtual bool stopping() const = 0;
    // lonctl upgrade is handing peers over.
    [[nodiscard]] virtual bool upgrading() const = 0;
    // Takes next (already judged) and applies the difference; returns what
    // was done (reload_plan's summary).
    virtual std::string apply(Loaded next) = 0;
    // A reload was decided, applied or not (its outcome goes into the
    // notifier's status and the status files now).
    virtual void reloaded() = 0;

protected:
    ~ReloadHost() = default;
};

class Reloader {
public:
    // setup: the supervisor's (argv, cwd, and what runs now); started:
    // when the supervisor started (counts as a reload that worked).
    Reloader(const SupervisorSetup& setup, ControlServer& control, Notifier& notifier,
             ReloadHost& host, std::time_t started);

    // Reloads now, or once the first probes (or the upgrade) are done;
    // answers waiter (a lonctl reload) with the outcome.
    void request(const std::string& source,
                 std::optional<ControlServer::ConnId> waiter = std::nullopt);
    // The reloads that waited: one now, for all of them.
    void run_pending();
    // Shutdown: their lonctls see the control socket close.
    void drop_pending() { pending_.clear(); }

    // The plan removed these peers: their delayed files are named in the
    // log, and in the status files for as long as they are there.
    void peers_removed(const std::vector<std::string>& removed);
    // The plan added these peers (again): their files are deliverable.
    void peers_added(const std::vector<std::string>& added);
    // The last reload, with the removed peers' delayed files as they are
    // now (for a status report).
    [[nodiscard]] const ReloadStatus& status_now();

private:
    struct Outcome {
        bool applied = false;
        std::string text; // what was done, or why not (one reason a line)
    };
    Outcome reload(const std::string& source);

    const SupervisorSetup& s_;
    ControlServer& control_;
    Notifier& notifier_;
    ReloadHost& host_;
    ReloadStatus status_;
    std::set<std::string> removed_hosts_; // their delayed files are listed in status
    std::vector<std::pair<std::string, std::optional<ControlServer::ConnId>>> pending_;
};

} // namespace lonc
