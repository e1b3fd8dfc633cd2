#include "lonc/child.hpp"

#include "lonc/clock_text.hpp"
#include "lonc/event_loop.hpp"
#include "lonc/ipc.hpp"
#include "lonc/log.hpp"
#include "lonc/metrics.hpp"
#include "lonc/peer_worker.hpp"
#include "lonc/signals.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <optional>

namespace lonc {

namespace {

// In-flight requests get this long to finish at TERM (bounded, 5 s).
constexpr double drain_grace = 5.0;

ipc::Fields status_fields(const PeerWorker& w, const std::string& generation) {
    const auto& st = w.stats();
    std::string ports;
    for (const auto& l : w.links()) {
        if (l->ready()) {
            ports += (ports.empty() ? "" : ",") + std::to_string(l->local_port());
        }
    }
    std::string last_error;
    for (const auto& l : w.links()) {
        if (!l->ready() && !l->last_error().empty()) {
            last_error = l->last_error();
        }
    }
    unsigned up = 0;
    for (const auto& l : w.links()) {
        up += l->ready() ? 1U : 0U;
    }
    ipc::Fields fields = {
        {"generation", generation},
        {"link", w.link_up() ? "up" : "down"},
        {"links_up", std::to_string(up)},
        {"links_total", std::to_string(w.links().size())},
        {"since", std::to_string(w.link_since_wall())},
        {"local_ports", ports},
        {"last_error", last_error},
        {"requests", std::to_string(st.requests)},
        {"errors", std::to_string(st.con_lost + st.rejected)},
        {"con_lost", std::to_string(st.con_lost)},
        {"rejected", std::to_string(st.rejected)},
        {"timeouts", std::to_string(st.timeouts)},
        {"reconnects", std::to_string(st.link_downs)},
        {"queue", std::to_string(w.queue_depth())},
        {"clients", std::to_string(w.client_count())},
        {"spool_pending", std::to_string(w.spooler().pending())},
        {"spool_oldest", std::to_string(w.spooler().oldest())},
        {"spool_delivered", std::to_string(w.spooler().stats().delivered)},
        {"spool_refused", std::to_string(w.spooler().stats().refused)},
        {"spool_bad", std::to_string(w.spooler().stats().bad)},
        {"latency", w.latency().encode()},
        {"status", perl_localtime(std::time(nullptr)) + ": " + w.summary()},
        {"last_log", log::last_log()},
    };
    add_facts(fields, read_self_facts());
    return fields;
}

} // namespace

int run_child(const ChildSetup& setup) {
    log::init({setup.settings.log_file(), setup.peer.id,
               spdlog::level::from_str(setup.opts.log_level), setup.opts.foreground});
    log::set_status("Starting");
    auto& lg = log::get("child");

    EventLoop loop;
    PeerWorker worker(loop, setup.settings, setup.peer, setup.self, setup.opts);
    bool draining = false;
    auto drain = [&] {
        if (draining) {
            loop.stop(0); // a second request to stop: now
            return;
        }
        draining = true;
        worker.drain(drain_grace);
    };

    std::optional<ipc::Channel> parent;
    if (setup.parent_fd >= 0) {
        parent.emplace(
            loop, UniqueFd(setup.parent_fd),
            [&](const ipc::Message& m) {
                switch (m.type) {
                case ipc::Type::status_request:
                    parent->send(ipc::Type::status_reply,
                                 ipc::encode_fields(status_fields(worker, m.payload)));
                    break;
                case ipc::Type::retry:
                    (void)worker.retry_now();
                    break;
                case ipc::Type::reconnect:
                    worker.reconnect();
                    break;
                case ipc::Type::spool_hint:
                    worker.spool_hint(m.payload);
                    break;
                case ipc::Type::drain:
                    if (!draining) {
                        drain();
                    }
                    break;
                case ipc::Type::options: {
                    Options next = worker.options();
                    std::string error;
                    if (!apply_options_text(next, m.payload, error)) {
                        lg.warn("Reload: options from the supervisor not taken: {}", error);
                        break;
                    }
                    worker.set_options(next);
                    log::set_level(spdlog::level::from_str(next.log_level));
                    lg.debug("Reload: new option values in effect");
                    break;
                }
                default:
                    break;
                }
            },
            [&](std::string_view why) {
                lg.warn("Lost the parent ({}): shutting down", why);
                if (!draining) {
                    drain();
                }
            });
        worker.on_link_state = [&](bool up) {
            parent->send(ipc::Type::link_state, up ? "up" : "down");
        };
    }

    SignalReader signals(loop, {SIGINT, SIGTERM, SIGHUP, SIGUSR1}, [&](const signalfd_siginfo& si) {
        switch (si.ssi_signo) {
        case SIGINT:
        case SIGTERM:
            drain();
            break;
        case SIGUSR1:
            // lonnet sends one for every critical con_lost: log only what it did.
            if (worker.retry_now()) {
                lg.info("USR1: retrying now; {}", worker.summary());
            }
            break;
        default:
            break;
        }
    });
    lg.info("Child for {} started (pid {})", setup.peer.id, ::getpid());
    worker.start();
    const int code = loop.run();
    lg.info("Child for {} exiting", setup.peer.id);
    return code;
}

} // namespace lonc
