#include "lonc/relay/peer_worker.hpp"

#include "lonc/core/clock_text.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"

#include <spdlog/spdlog.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("peer");
}

// Handing off, the drain's grace is --request-timeout and this much more:
// every request it holds has met its own deadline by then.
constexpr double handoff_margin = 1.0;
// A client that connected to the old socket writes its line at once
// (lonnet does): one silent this long is not waited for.
constexpr double handoff_silence = 5.0;

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

} // namespace

PeerWorker::PeerWorker(EventLoop& loop, Settings settings, Peer peer, Peer self, Options opts,
                       const LinkFactory& make_link)
    : loop_(loop), settings_(std::move(settings)), peer_(std::move(peer)), self_(std::move(self)),
      opts_(std::move(opts)), make_link_(make_link), open_timer_(loop, [this] { dispatch(); }),
      link_idle_timer_(loop, [this] { close_idle_links(); }),
      accept_timer_(loop, [this] { on_listener_timer(); }),
      request_timer_(loop, [this] { on_request_timer(); }),
      grace_timer_(loop, [this] { on_grace_timer(); }),
      idle_timer_(loop, [this] { on_idle_timer(); }),
      pong_timer_(loop,
                  [this] {
                      if (links_ready_ > 0 && pong_ && !draining_) {
                          pong_->kind = Request::Kind::pong;
                          pong_->line = "pong";
                          pong_->arrived = loop_.now();
                          pong_->deadline = loop_.now() + seconds(opts_.request_timeout);
                          enqueue(std::move(pong_));
                      }
                  }),
      spooler_(loop, settings_, peer_.id, opts_, [this](RequestPtr r) { enqueue(std::move(r)); }),
      handoff_timer_(loop,
                     [this] {
                         // The last connects that found the old socket.
                         while (listener_ && accepting_ && accept_clients() > 0) {
                         }
                         // What it holds is answered by lond or times out under
                         // --request-timeout; the grace only backs that up.
                         drain(opts_.request_timeout + handoff_margin);
                         maybe_finish_drain(); // armed again: a silent client's wait is over
                     }),
      drain_timer_(loop, [this] {
          lg().warn("Shutdown grace over: answering {} queued and in-flight requests con_lost",
                    pending_.size());
          stop_links("shutting down");
          while (!pending_.empty()) {
              complete(take_front(), con_lost, false);
          }
          maybe_finish_drain();
      }) {
    pong_ = std::make_unique<Request>();
    LinkConfig& lc = link_cfg_;
    lc.remote_id = peer_.id;
    lc.local_id = self_.id;
    lc.addr = peer_.addr;
    lc.port = settings_.lond_port;
    if (is_local_address(self_.addr)) {
        lc.source = self_.addr; // lond knows us by this address
    }
    lc.handshake_timeout = opts_.handshake_timeout;
    lc.retry_min = opts_.retry_min;
    lc.retry_max = opts_.retry_max;
    lc.pipeline = opts_.pipeline;
    lc.max_reply = opts_.max_reply;
    kept_ = opts_.connections;
    for (unsigned i = 0; i < kept_; ++i) {
        links_.push_back(make_link_ ? make_link_(loop_, lc, *this, i + 1)
                                    : std::make_unique<Link>(loop_, lc, *this, i + 1));
    }
    use_.resize(links_.size());
    for (unsigned i = 0; i < kept_; ++i) {
        use_[i].index = i + 1;
    }
    link_since_ = loop_.now();
    link_since_wall_ = std::time(nullptr);
}

PeerWorker::~PeerWorker() {
    if (reap_deferred_) {
        loop_.cancel(*this);
    }
    for (auto& c : clients_) {
        loop_.remove(c.fd.get(), c);
    }
    close_listener();
}

void PeerWorker::start() {
    log::set_status("Connecting to " + peer_.id);
    for (auto& l : links_) {
        l->connect();
    }
}

void PeerWorker::set_options(const Options& opts) {
    const auto connections = opts_.connections;
    opts_ = opts; // the spooler reads them through its reference
    opts_.connections = connections;
    LinkConfig& lc = link_cfg_;
    lc.handshake_timeout = opts_.handshake_timeout;
    lc.retry_min = opts_.retry_min;
    lc.retry_max = opts_.retry_max;
    lc.pipeline = opts_.pipeline;
    lc.max_reply = opts_.max_reply;
    for (auto& l : links_) {
        l->set_limits(lc);
    }
    close_idle_links(); // a lower --max-connections, a shorter --link-idle-timeout
    dispatch();         // a longer pipeline, a higher maximum may take more now
}

bool PeerWorker::retry_now() {
    bool any = false;
    for (std::size_t i = 0; i < kept_; ++i) { // an extra link that failed is not retried
        any = links_[i]->retry_now() || any;
    }
    return any;
}

void PeerWorker::reconnect() {
    if (draining_) {
        return;
    }
    lg().info("INFO: Reconnecting to {} (requested by the operator)", peer_.id);
    // The links there are now: a reset dispatches, and may open another.
    for (std::size_t i = 0, n = links_.size(); i < n; ++i) {
        if (!extra(i)) {
            links_[i]->reset("reconnect requested by the operator");
        } else if (!use_[i].dead) {
            use_[i].closing = true; // opened again on demand, if needed
            links_[i]->stop("reconnect requested by the operator");
        }
    }
}

bool PeerWorker::link_up() const noexcept {
    return links_ready_ > 0;
}

// ---------------------------------------------------------------- links

void PeerWorker::link_up(LondLink& link) {
    const auto i = link_at(link);
    ++links_ready_;
    ++stats_.link_ups;
    connection_[&link] = stats_.link_ups;
    if (links_ready_ == 1) {
        link_since_ = loop_.now();
        link_since_wall_ = std::time(nullptr);
        grace_timer_.cancel();
        log::set_status("Connected");
        // A child that handed off never listens or delivers again: the path
        // and the spool lock are its successor's.
        if (!draining_ && !handing_off_) {
            open_listener();
            spooler_.start();
        }
        if (on_link_state) {
            on_link_state(true);
        }
    }
    // The pong asks lond to ping us back: once the peer's lonc had time
    // to connect to our lond (PROTOCOL.md 2.3). A link opened on demand
    // sends none: the way back is the same, and the link is there to carry
    // the requests that wait, which it takes at once.
    if (pong_ && !extra(i)) {
        pong_timer_.arm_in(seconds(opts_.handshake_pause));
    }
    dispatch();
    if (extra(i) && link.in_flight() == 0) {
        mark_idle(i);
    } else if (!extra(i) && links_.size() > kept_) {
        close_idle_links(); // an extra link kept as the one up may go now
    }
}

void PeerWorker::link_down(LondLink& link, bool was_up) {
    const auto i = link_at(link);
    const bool on_purpose = extra(i) && use_[i].closing; // closed idle: not a failure
    if (extra(i)) {
        extra_down(i, was_up);
    }
    if ((!was_up || !link.answered()) && !on_purpose) {
        ++stats_.link_failures; // every failed attempt, though lonc.log sums them up
    }
    if (was_up) {
        if (!on_purpose) {
            spooler_.link_lost();
        }
        --links_ready_;
        stats_.link_downs += on_purpose ? 0U : 1U;
        if (links_ready_ == 0) {
            if (on_link_state) {
                on_link_state(false);
            }
            link_since_ = loop_.now();
            link_since_wall_ = std::time(nullptr);
            log::set_status("Connection lost");
            close_listener();
            spooler_.stop();
            if (!pending_.empty() && (!draining_ || handing_off_)) {
                grace_timer_.arm_in(seconds(opts_.requeue_grace));
            }
        }
    }
    dispatch(); // other links may take what this one would have
    maybe_finish_drain();
}

void PeerWorker::link_reply(LondLink& link, RequestPtr req, std::string_view reply) {
    const auto i = link_at(link);
    if (!use_[i].answered) {
        use_[i].answered = true;
        extra_failures_ = extra(i) ? 0 : extra_failures_; // lond takes new links again
    }
    // A death on a delayed message before this connection came up counts now.
    spooler_.peer_answered(connection_[&link]);
    // The next request first: lond works on it while this reply goes out.
    dispatch();
    if (extra(i) && link.in_flight() == 0 && !use_[i].dead) {
        mark_idle(i);
    }
    complete(std::move(req), reply, true);
}

void PeerWorker::link_lost(LondLink& link, RequestPtr req, Lost why) {
    if (req->kind == Request::Kind::spool && (why == Lost::fault || why == Lost::timeout)) {
        if (why == Lost::fault) {
            // The message may be what kills lond.
            spooler_.died(std::move(req), link.last_error(), connection_[&link]);
        } else {
            spooler_.timed_out(std::move(req)); // lond hangs on it, or is slow: it waits
        }
        maybe_finish_drain();
        return;
    }
    complete(std::move(req), con_lost, false);
}

// ------------------------------------------------------------- requests

void PeerWorker::enqueue(RequestPtr req) {
    if (req->kind == Request::Kind::client) {
        ++queued_clients_;
    }
    // A reload may shorten --request-timeout: a new deadline can come
    // before the one the timer is armed for.
    if (!request_timer_.armed() || req->deadline < request_timer_.deadline()) {
        request_timer_.arm_at(req->deadline);
    }
    pending_.push_back(std::move(req));
    dispatch();
}

RequestPtr PeerWorker::take_front() {
    RequestPtr r = std::move(pending_.front());
    pending_.pop_front();
    if (r->kind == Request::Kind::client) {
        --queued_clients_;
    }
    return r;
}

// The head of the queue goes to the first idle link (the kept ones come
// first, so links opened on demand fall idle and close). Behind a busy link
// (--pipeline) only while no link can be opened: a request never waits
// behind a slow one while a link could be made for it.
void PeerWorker::dispatch() {
    while (!pending_.empty()) {
        LondLink* best = nullptr;
        std::size_t ready = 0;
        for (auto& l : links_) {
            ready += l->ready() ? 1U : 0U;
            // Over a lowered maximum: no new request, so it falls idle and closes.
            if (!l->can_send() || ready > max_links()) {
                continue;
            }
            if (l->in_flight() == 0) {
                best = l.get();
                break;
            }
            if (best == nullptr || l->in_flight() < best->in_flight()) {
                best = l.get();
            }
        }
        if (best != nullptr && best->in_flight() > 0 &&
            pending_.front()->kind == Request::Kind::client && may_open_link()) {
            best = nullptr;
        }
        if (best == nullptr) {
            open_links();
            return;
        }
        RequestPtr r = take_front();
        if (r->kind == Request::Kind::client && r->client == nullptr) {
            continue; // its client is gone: nobody to answer, not sent (freed here)
        }
        best->send(std::move(r));
    }
    queue_full_logged_ = false;
}

// Every request ends here exactly once: with lond's reply, or con_lost. It
// goes back to its source (a client whose connection is gone: freed).
void PeerWorker::complete(RequestPtr req, std::string_view reply, bool from_lond) {
    switch (req->kind) {
    case Request::Kind::client: {
        latency_.observe(std::chrono::duration<double>(loop_.now() - req->arrived).count());
        if (req->line.capacity() > client_keep_capacity) {
            std::string().swap(req->line); // an idle client keeps no big request buffer
        }
        if (from_lond) {
            ++stats_.requests;
        } else {
            ++stats_.con_lost;
        }
        Client* c = std::exchange(req->client, nullptr);
        if (c == nullptr) {
            break; // the client closed while its request was out
        }
        c->req = std::move(req);
        client_enter(*c, Client::State::idle);
        if (!client_reply(*c, reply)) {
            client_enter(*c, Client::State::closed);
        } else if (c->state == Client::State::idle) {
            client_lines(*c);
        }
        break;
    }
    case Request::Kind::pong:
        if (from_lond && !starts_with(reply, peer_.id)) {
            lg().info("Pong reply: >{}<", log::printable(reply));
        }
        pong_ = std::move(req);
        break;
    case Request::Kind::spool:
        spooler_.done(std::move(req),
                      from_lond ? std::optional<std::string_view>(reply) : std::nullopt);
        break;
    }
    maybe_finish_drain();
}

void PeerWorker::arm_request_timer() {
    EventLoop::TimePoint next = EventLoop::TimePoint::max();
    if (!pending_.empty()) {
        next = pending_.front()->deadline;
    }
    for (auto& l : links_) {
        if (const auto* r = l->oldest()) {
            next = std::min(next, r->deadline);
        }
    }
    if (next != EventLoop::TimePoint::max()) {
        request_timer_.arm_at(next);
    }
}

void PeerWorker::on_request_timer() {
    const auto now = loop_.now();
    std::size_t expired = 0;
    std::string first;
    while (!pending_.empty() && pending_.front()->deadline <= now) {
        auto r = take_front();
        if (expired++ == 0) {
            first = log::redact(r->line);
        }
        ++stats_.timeouts;
        complete(std::move(r), con_lost, false);
    }
    if (expired > 0) {
        lg().error("Timeout: {} queued request{} never sent within {} s (first: {})", expired,
                   expired == 1 ? "" : "s", opts_.request_timeout, first);
    }
    // By index, over the links there are now: a timed-out link that fails
    // dispatches what waits, which may open a link and grow links_.
    for (std::size_t i = 0, n = links_.size(); i < n; ++i) {
        LondLink* l = links_[i].get();
        if (const auto* r = l->oldest(); r != nullptr && r->deadline <= now) {
            ++stats_.timeouts;
            if (r->kind != Request::Kind::spool) { // the spooler says it once per message
                lg().error("Timeout: {}", log::redact(r->line));
            }
            // The reply may still come: only a new connection guarantees
            // it never reaches the next request.
            l->time_out("request timed out after " + std::to_string(opts_.request_timeout) + " s");
        }
    }
    arm_request_timer();
}

void PeerWorker::on_grace_timer() {
    if (links_ready_ > 0) {
        return;
    }
    // Clients are worth the line; lonc's own pong and delayed message are
    // not (a sick peer would get one per failed attempt).
    const auto n = queued_clients_;
    while (!pending_.empty()) {
        complete(take_front(), con_lost, false);
    }
    if (n > 0) {
        lg().warn("No link to {} within {} s: answered {} queued request{} con_lost", peer_.id,
                  opts_.requeue_grace, n, n == 1 ? "" : "s");
    }
}

// ---------------------------------------------------------------- drain

// Connects that resolved the path just before the new child's socket
// replaced it may still land in our backlog for a moment.
constexpr double handoff_linger = 0.1;

void PeerWorker::hand_off() {
    if (draining_ || handing_off_) {
        return;
    }
    handing_off_ = true;
    spooler_.stop(); // the new child delivers once our spool lock is gone
    handoff_timer_.arm_in(seconds(handoff_linger));
}

void PeerWorker::drain(double grace) {
    if (draining_) {
        // Asked again (a shutdown while handing off): the sooner limit holds.
        const auto by = loop_.now() + seconds(grace);
        if (drain_timer_.armed() && drain_timer_.deadline() > by) {
            drain_timer_.arm_at(by);
        }
        return;
    }
    draining_ = true;
    log::set_status("Shutting down");
    close_listener();
    spooler_.stop();
    pong_timer_.cancel();
    if (!handing_off_) {
        grace_timer_.cancel(); // handing off, a link down still answers con_lost in time
    }
    drain_timer_.arm_in(seconds(grace));
    maybe_finish_drain();
}

void PeerWorker::maybe_finish_drain() {
    if (!draining_ || loop_.stopped() || !pending_.empty()) {
        return;
    }
    if (handing_off_ && drain_timer_.armed()) {
        // Within the grace, a client that has connected gets its answer.
        for (const auto& c : clients_) {
            if (c.state == Client::State::replying) {
                return;
            }
            if (c.state == Client::State::idle && c.fresh) {
                const auto until = c.active + seconds(handoff_silence);
                if (until > loop_.now()) {
                    handoff_timer_.arm_at(until);
                    return;
                }
            }
        }
    }
    for (auto& l : links_) {
        if (l->in_flight() > 0) {
            return;
        }
    }
    stop_links("shutting down");
    for (auto it = clients_.begin(); it != clients_.end();) {
        auto& c = *it++;
        if (c.state != Client::State::waiting) {
            client_enter(c, Client::State::closed);
        }
    }
    loop_.stop(0);
}

// ---------------------------------------------------------------- spool

void PeerWorker::spool_hint(std::string_view name) {
    spooler_.hint(name);
}

bool PeerWorker::sick() const noexcept {
    bool sick = false;
    for (const auto& l : links_) {
        if (l->ready() && l->answered()) {
            return false;
        }
        sick = sick || l->sick_attempts() > 0;
    }
    return sick;
}

std::string PeerWorker::health() const {
    return sick() ? "sick" : links_ready_ > 0 ? "up" : "down";
}

std::string PeerWorker::summary() const {
    const auto h = health();
    std::string s = h == "sick" ? "link sick" : links_ready_ > 0 ? "link up" : "link down";
    if (links_.size() > 1) {
        s += " " + std::to_string(links_ready_) + "/" + std::to_string(links_.size());
    }
    s += " since " + perl_localtime(link_since_wall_);
    if (h == "sick") {
        for (const auto& l : links_) {
            if (l->sick_attempts() > 0) {
                s += " (" + std::to_string(l->sick_attempts()) +
                     " links died before lond answered; last: " + l->last_error() + ")";
                break;
            }
        }
    } else if (links_ready_ == 0 && !links_.empty() && !links_.front()->last_error().empty()) {
        s += " (" + links_.front()->last_error() + ")";
    }
    s += ", requests " + std::to_string(stats_.requests);
    s += ", errors " + std::to_string(stats_.con_lost + stats_.rejected);
    s += ", queue " + std::to_string(pending_.size());
    s += ", clients " + std::to_string(clients_.size());
    const auto& sp = spooler_.stats();
    s += ", spool pending " + std::to_string(spooler_.pending());
    if (const auto oldest = spooler_.oldest(); oldest > 0) {
        const auto age = std::time(nullptr) - static_cast<std::time_t>(oldest);
        s += " (oldest " + std::to_string(age > 0 ? age : 0) + " s)";
    }
    s += ", delivered " + std::to_string(sp.delivered);
    s += ", bad " + std::to_string(sp.bad);
    return s;
}

} // namespace lonc
