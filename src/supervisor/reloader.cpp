#include "lonc/supervisor/reloader.hpp"

#include "lonc/core/control_words.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/supervisor/reload_plan.hpp"
#include "lonc/supervisor/spool_watch.hpp"

#include <spdlog/spdlog.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("supervisor");
}

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

} // namespace

Reloader::Reloader(const SupervisorSetup& setup, ControlServer& control, Notifier& notifier,
                   ReloadHost& host, std::time_t started)
    : s_(setup), control_(control), notifier_(notifier), host_(host) {
    status_.time = status_.last_success = started;
    status_.result = "loaded at start";
}

// A reload reads the whole configuration again (load_configuration: the
// command line, the settings file, access.conf, hosts.tab) and takes it
// only if --check-config would call it OK and nothing in it needs a
// restart. Then only the difference is applied: a peer whose address and
// londPort are unchanged keeps its child, link and socket; an added peer is
// probed and gets a child; a removed peer's child drains and exits (its
// socket goes with it); a peer whose address changed gets a new child once
// the old one has drained. New timeouts and limits reach running children
// over their socketpair.

void Reloader::request(const std::string& source, std::optional<ControlServer::ConnId> waiter) {
    if (host_.stopping()) {
        if (waiter) {
            control_.answer(*waiter, line_of(words::shutting_down));
        }
        return;
    }
    if (!host_.ready() || host_.upgrading()) {
        lg().info("INFO: {}: reload as soon as the {} done", source,
                  host_.upgrading() ? "upgrade is" : "first probes are");
        pending_.emplace_back(source, waiter);
        return;
    }
    const auto out = reload(source);
    if (waiter) {
        control_.answer(*waiter, verdict(out.applied ? words::applied : words::rejected, out.text));
    }
}

Reloader::Outcome Reloader::reload(const std::string& source) {
    notifier_.reloading();
    log::set_status("Reloading");
    auto next = load_configuration(s_.argv, s_.cwd);
    auto reasons = next.problems();
    if (reasons.empty()) {
        reasons = restart_reasons({s_.opts, s_.config}, {next.opts, next.config});
    }
    Outcome out;
    status_.time = std::time(nullptr);
    if (!reasons.empty()) {
        for (const auto& r : reasons) {
            log::error_not_critical(lg(), "{}: configuration not reloaded: {}", source, r);
        }
        log::error_not_critical(
            lg(), "{}: reload rejected; lonc runs on with its configuration unchanged", source);
        out.text = joined(reasons, "\n");
        status_.success = false;
        status_.result = "rejected: " + joined(reasons, "; ");
    } else {
        out.applied = true;
        out.text = host_.apply(std::move(next));
        lg().info("INFO: {}: configuration reloaded: {}", source, out.text);
        status_.success = true;
        status_.last_success = status_.time;
        status_.result = "applied: " + out.text;
    }
    log::set_status("Sleeping");
    notifier_.ready();
    host_.reloaded(); // the outcome shows in the status files now
    return out;
}

void Reloader::run_pending() {
    if (const auto waiting = std::exchange(pending_, {}); !waiting.empty()) {
        const auto out = reload(waiting.front().first);
        for (const auto& [source, waiter] : waiting) {
            if (waiter) {
                control_.answer(*waiter,
                                verdict(out.applied ? words::applied : words::rejected, out.text));
            }
        }
    }
}

void Reloader::peers_removed(const std::vector<std::string>& removed) {
    if (removed.empty()) {
        return;
    }
    const std::set<std::string> hosts(removed.begin(), removed.end());
    constexpr std::size_t listed = 10; // one short line, whatever delayed/ holds
    for (const auto& [host, names] : spool_files_of(s_.config.settings->spool_dir(), hosts)) {
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
void Reloader::peers_added(const std::vector<std::string>& added) {
    for (const auto& id : added) {
        removed_hosts_.erase(id);
    }
}

const ReloadStatus& Reloader::status_now() {
    status_.undeliverable.clear();
    if (!removed_hosts_.empty()) {
        status_.undeliverable = spool_files_of(s_.config.settings->spool_dir(), removed_hosts_);
        std::erase_if(removed_hosts_,
                      [&](const std::string& h) { return status_.undeliverable.count(h) == 0; });
    }
    return status_;
}

} // namespace lonc
