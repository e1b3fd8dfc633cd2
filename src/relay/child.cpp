#include "lonc/relay/child.hpp"

#include "lonc/core/child_report.hpp"
#include "lonc/core/clock_text.hpp"
#include "lonc/relay/peer_worker.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/runtime/ipc.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/signals.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <optional>

namespace lonc {

namespace {

// In-flight requests get this long to finish at TERM (bounded, 5 s).
constexpr double drain_grace = 5.0;

ChildReport make_report(const PeerWorker& w, std::uint64_t generation) {
    ChildReport r;
    r.generation = generation;
    r.link = w.link_up() ? LinkState::up : LinkState::down;
    for (const auto& l : w.links()) {
        if (l->ready()) {
            ++r.links_up;
            r.local_ports += (r.local_ports.empty() ? "" : ",") + std::to_string(l->local_port());
        } else if (!l->last_error().empty()) {
            r.last_error = l->last_error();
        }
    }
    r.health = w.health();
    if (r.health == "sick") {
        for (const auto& l : w.links()) {
            if (l->sick_attempts() > 0 && !l->last_error().empty()) {
                r.last_error = l->last_error();
            }
        }
    }
    r.link_failures = w.stats().link_failures;
    r.links_total = w.links().size();
    r.links_max = w.max_links();
    r.links_opened = w.stats().links_opened;
    r.links_closed = w.stats().links_closed;
    r.handshakes = w.stats().link_ups;
    r.since = w.link_since_wall();
    const auto& st = w.stats();
    r.requests = st.requests;
    r.errors = st.con_lost + st.rejected;
    r.con_lost = st.con_lost;
    r.rejected = st.rejected;
    r.timeouts = st.timeouts;
    r.reconnects = st.link_downs;
    r.queue = w.queue_depth();
    r.clients = w.client_count();
    const auto& spool = w.spooler();
    r.spool_pending = spool.pending();
    r.spool_oldest = spool.oldest();
    r.spool_delivered = spool.stats().delivered;
    r.spool_refused = spool.stats().refused;
    r.spool_bad = spool.stats().bad;
    r.latency = w.latency();
    r.status = perl_localtime(std::time(nullptr)) + ": " + w.summary();
    r.last_log = log::last_log();
    r.process = read_self_facts();
    return r;
}

} // namespace

int run_child(const ChildSetup& setup) {
    log::init({setup.settings.log_file(), setup.peer.id,
               spdlog::level::from_str(setup.opts.log_level), setup.opts.foreground});
    log::set_status("Starting");
    auto& lg = log::get("child");

    EventLoop loop;
    PeerWorker worker(loop, setup.settings, setup.peer, setup.self, setup.opts);
    if (setup.successor) {
        worker.expect_predecessor();
    }
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
                    // parse() checked the generation
                    parent->send(ipc::Type::status_reply,
                                 make_report(worker, ipc::decode_generation(m.payload).value_or(0))
                                     .encode());
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
                    } else {
                        worker.drain(drain_grace); // a shutdown during a hand-off: bounded
                    }
                    break;
                case ipc::Type::reclaim:
                    worker.reclaim_socket();
                    break;
                case ipc::Type::handoff:
                    if (!draining) {
                        draining = true;
                        lg.info("Handing {} over to a new child", setup.peer.id);
                        worker.hand_off();
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
            parent->send(ipc::Type::link_state, to_string(up ? LinkState::up : LinkState::down));
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
