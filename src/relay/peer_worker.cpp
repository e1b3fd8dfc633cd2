#include "lonc/relay/peer_worker.hpp"

#include "lonc/core/clock_text.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"

#include <spdlog/spdlog.h>

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("peer");
}

constexpr std::string_view con_lost = "con_lost";
// A client's read buffer keeps this much capacity between requests.
constexpr std::size_t client_keep_capacity = 4096;
// Released clients kept for reuse: lonnet connects once per request, and a
// kept Client (list node, buffers) makes accepting one allocation-free.
constexpr std::size_t spare_clients = 16;
// Descriptors kept free, besides every link's, for the child's own work
// (client_cap).
constexpr std::size_t own_work_fds = 8;
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

void Client::on_events(std::uint32_t events) {
    worker.client_events(*this, events);
}

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

// ------------------------------------------------------------- listener

void PeerWorker::open_listener() {
    if (listener_ || links_ready_ == 0 || draining_ || handing_off_) {
        return;
    }
    const auto path = settings_.socket_path(peer_.id);
    listener_ = listen_unix(path, 0600, SOMAXCONN, &listener_file_,
                            take_live_path_ ? LiveSocket::replace : LiveSocket::keep);
    if (!listener_ && errno == EADDRINUSE) {
        // A successor's (lonctl upgrade): a hand-off is on its way, and a
        // take-back (reclaim_socket) if the successor is given up on. Or a
        // process on its way out (an orphaned child of an earlier lonc):
        // looked at again every second, the path is ours once it leaves.
        if (!path_held_elsewhere_) {
            lg().info("INFO: Another process listens on {}: leaving it that process's while it "
                      "does",
                      path.string());
        }
        path_held_elsewhere_ = true;
        accept_timer_.arm_in(seconds(1));
        return;
    }
    path_held_elsewhere_ = false;
    if (!listener_) {
        lg().error("Can't make server socket {}: {} (retrying in 5 s)", path.string(),
                   std::strerror(errno));
        accept_timer_.arm_in(seconds(5));
        return;
    }
    if (fd_budget_ == 0) {
        const auto limit = fd_limit();
        const auto open = open_fd_count();
        fd_budget_ = limit > open ? static_cast<std::size_t>(limit - open) : 1;
    }
    take_live_path_ = false;
    loop_.add(listener_.get(), EPOLLIN, *this);
    accepting_ = true;
}

// Retries what stopped the listener: a failed bind, or a pause after EMFILE.
void PeerWorker::on_listener_timer() {
    if (!listener_) {
        open_listener();
    } else if (!accepting_) {
        loop_.add(listener_.get(), EPOLLIN, *this);
        accepting_ = true;
    }
}

void PeerWorker::close_listener() {
    accept_timer_.cancel();
    if (!listener_) {
        return;
    }
    if (accepting_) {
        loop_.remove(listener_.get(), *this);
        accepting_ = false;
    }
    listener_.reset();
    // Only the file we bound: after a hand-off the path is the new child's.
    (void)unlink_if_ours(settings_.socket_path(peer_.id), listener_file_);
}

void PeerWorker::on_events(std::uint32_t /*events*/) {
    (void)accept_clients();
}

// Clients take descriptors only up to what leaves room for the child's own
// work: every link it may open, a spool file and its lock, a log reopened
// after rotation, a sanitizer's pipe. Beyond that they wait in the listen
// backlog, as at EMFILE, and the links and the spool go on.
std::size_t PeerWorker::client_cap() const noexcept {
    const std::size_t keep = max_links() + own_work_fds;
    return fd_budget_ == 0 ? SIZE_MAX : fd_budget_ > keep ? fd_budget_ - keep : 1;
}

void PeerWorker::pause_accept(const std::string& why) {
    if (!emfile_logged_) {
        lg().warn("accept: {}; pausing accept (clients {})", why, clients_.size());
        emfile_logged_ = true;
    }
    loop_.remove(listener_.get(), *this);
    accepting_ = false;
    accept_timer_.arm_in(seconds(0.25));
}

std::size_t PeerWorker::accept_clients() {
    std::size_t taken = 0;
    for (int i = 0; i < 64; ++i) {
        if (clients_.size() >= client_cap()) {
            pause_accept(std::string(std::strerror(EMFILE)) + " (" +
                         std::to_string(max_links() + own_work_fds) + " of the limit of " +
                         std::to_string(fd_limit()) + " kept for links and the spool)");
            return taken;
        }
        UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: stop accepting for a moment instead of
                // spinning on a listener that stays readable.
                pause_accept(std::strerror(errno));
            } else if (errno != EAGAIN) {
                lg().warn("accept: {}", std::strerror(errno));
            }
            return taken;
        }
        if (emfile_logged_) {
            lg().info("INFO: accepting clients again (clients {})", clients_.size());
            emfile_logged_ = false;
        }
        ++stats_.clients_accepted;
        ++taken;
        if (spare_.empty()) {
            clients_.emplace_back(*this, opts_.max_line);
        } else {
            clients_.splice(clients_.end(), spare_, spare_.begin());
        }
        auto& c = clients_.back();
        c.self = std::prev(clients_.end());
        c.fd = std::move(fd);
        client_enter(c, Client::State::idle);
        if (!idle_timer_.armed()) {
            idle_timer_.arm_at(c.active + seconds(opts_.client_idle_timeout));
        }
    }
    return taken;
}

// -------------------------------------------------------------- clients

// The one place a client changes state (Client's drawing): what entering a
// state does to the descriptor, its registration and its request.
void PeerWorker::client_enter(Client& c, Client::State next) {
    using State = Client::State;
    assert(Client::may_enter(c.state, next));
    const State from = std::exchange(c.state, next);
    switch (next) {
    case State::idle:
        if (from == State::closed) { // a new connection
            c.in.clear();
            c.in.set_max_line(opts_.max_line);
            c.out.clear();
            c.out_off = 0;
            if (!c.req) {
                c.req = std::make_unique<Request>(); // the last one left with its request
            }
            c.active = loop_.now();
            c.fresh = true;
            c.watched = EPOLLIN;
            loop_.add(c.fd.get(), EPOLLIN, c);
        } else if (from == State::waiting) {
            c.outstanding = nullptr; // answered: the request is back in c.req
        } else if (from == State::replying) {
            client_watch(c, EPOLLIN); // EPOLLOUT would fire on while it waits
        }
        // EPOLLIN comes back once the lines already buffered are taken
        // (client_lines): a request a line starts costs no syscall.
        break;
    case State::waiting:
        c.fresh = false;
        c.outstanding = c.req.get();
        c.req->client = &c;
        break; // EPOLLIN stays until more input comes (client_events)
    case State::replying:
        client_watch(c, EPOLLOUT);
        break;
    case State::closed:
        if (c.outstanding != nullptr) {
            c.outstanding->client = nullptr; // lond's answer has nowhere to go
            c.outstanding = nullptr;
        }
        loop_.forget(c); // a client's socket is ours alone: close() unregisters it
        c.fd.reset();
        c.watched = 0;
        client_release(c);
        break;
    }
}

void PeerWorker::client_watch(Client& c, std::uint32_t events) {
    if (c.watched != events) {
        c.watched = events;
        loop_.modify(c.fd.get(), events, c);
    }
}

void PeerWorker::client_events(Client& c, std::uint32_t events) {
    using State = Client::State;
    if ((events & EPOLLERR) != 0) {
        client_enter(c, State::closed);
        return;
    }
    if ((events & EPOLLOUT) != 0) {
        client_flush(c);
        return; // client_flush reads on if it can; c may be gone
    }
    if ((events & EPOLLHUP) != 0 && c.state != State::idle) {
        client_enter(c, State::closed); // gone both ways: its reply has nowhere to go
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP)) != 0) {
        if (c.state != State::idle) {
            // More input while a request is outstanding: leave it in the
            // socket until this one is answered (the client's order holds,
            // and a flood of lines costs us nothing).
            client_watch(c, 0);
            return;
        }
        client_read(c);
    }
}

void PeerWorker::client_read(Client& c) {
    auto space = c.in.prepare(client_keep_capacity);
    if (space.empty()) {
        client_lines(c); // reports the overflow
        return;
    }
    const auto n = ::recv(c.fd.get(), space.data(), space.size(), MSG_DONTWAIT);
    if (n == 0) {
        client_enter(c, Client::State::closed); // idle: nothing owed
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            client_enter(c, Client::State::closed);
        }
        return;
    }
    c.in.commit(static_cast<std::size_t>(n));
    touch(c);
    client_lines(c);
}

// Takes the client's next request lines, one at a time: the next is read
// only once the previous is answered and its reply written.
void PeerWorker::client_lines(Client& c) {
    using State = Client::State;
    while (c.state == State::idle && !loop_.stopped()) {
        auto line = c.in.next_line();
        if (!line) {
            break;
        }
        if (!client_line(c, *line)) {
            client_enter(c, State::closed);
            return;
        }
    }
    if (c.state != State::idle || loop_.stopped()) {
        return;
    }
    if (c.in.overflowed()) {
        ++stats_.rejected;
        lg().warn("Client line longer than --max-line ({} bytes): answered con_lost and closed",
                  opts_.max_line);
        c.in.reset();
        (void)client_reply(c, con_lost);
        client_enter(c, State::closed);
        return;
    }
    if (c.in.buffered() == 0 && c.in.capacity() > client_keep_capacity) {
        c.in.reset();
    }
    client_watch(c, EPOLLIN);
}

bool PeerWorker::client_line(Client& c, std::string_view line) {
    if (line == "close_connection_exit") {
        log::set_status("Request close connection");
        lg().error("Request Close Connection");
        stop_links("close_connection_exit");
        close_listener();
        loop_.stop(0);
        return true;
    }
    // Handing off, the clients already accepted are still ours to serve.
    if (links_ready_ == 0 || (draining_ && !handing_off_)) {
        ++stats_.con_lost;
        return client_reply(c, con_lost);
    }
    if (queued_clients_ >= opts_.max_queue) {
        ++stats_.rejected;
        if (!queue_full_logged_) {
            lg().warn("Queue full ({} requests waiting for {}): answering con_lost",
                      queued_clients_, peer_.id);
            queue_full_logged_ = true;
        }
        return client_reply(c, con_lost);
    }
    Request& r = *c.req;
    r.kind = Request::Kind::client;
    r.line.assign(line);
    r.arrived = loop_.now();
    r.deadline = r.arrived + seconds(opts_.request_timeout);
    client_enter(c, Client::State::waiting);
    enqueue(std::move(c.req));
    return true;
}

// Writes one reply line. Tries the socket first; only what does not fit is
// copied to the client's buffer (and EPOLLOUT asked for). False when the
// socket is broken: the caller closes the client (never done here, so the
// client outlives every caller's loop).
bool PeerWorker::client_reply(Client& c, std::string_view text) {
    touch(c);
    if (c.state == Client::State::replying) {
        c.out.append(text);
        c.out += '\n';
        return true;
    }
    c.out.clear();
    c.out_off = 0;
    char nl = '\n';
    iovec iov[2] = {{const_cast<char*>(text.data()), text.size()}, {&nl, 1}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    auto n = ::sendmsg(c.fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            return false;
        }
        n = 0;
    }
    const auto sent = static_cast<std::size_t>(n);
    if (sent == text.size() + 1) {
        return true;
    }
    if (sent < text.size()) {
        c.out.assign(text.substr(sent));
        c.out += '\n';
    } else {
        c.out.assign("\n");
    }
    client_enter(c, Client::State::replying);
    return true;
}

void PeerWorker::client_flush(Client& c) {
    while (c.out_off < c.out.size()) {
        const auto n = ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off,
                              MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                client_enter(c, Client::State::closed);
            }
            return;
        }
        c.out_off += static_cast<std::size_t>(n);
    }
    c.out.clear();
    c.out_off = 0;
    if (c.out.capacity() > client_keep_capacity) {
        c.out.shrink_to_fit();
    }
    if (c.state == Client::State::replying) {
        client_enter(c, Client::State::idle);
    }
    client_lines(c);
}

void PeerWorker::client_release(Client& c) {
    if (spare_.size() < spare_clients && c.in.capacity() <= client_keep_capacity &&
        c.out.capacity() <= client_keep_capacity &&
        (!c.req || c.req->line.capacity() <= client_keep_capacity)) {
        spare_.splice(spare_.end(), clients_, c.self);
    } else {
        clients_.erase(c.self);
    }
}

void PeerWorker::touch(Client& c) {
    c.active = loop_.now();
    clients_.splice(clients_.end(), clients_, c.self);
}

void PeerWorker::on_idle_timer() {
    const auto limit = seconds(opts_.client_idle_timeout);
    const auto now = loop_.now();
    std::size_t closed = 0;
    for (std::size_t n = clients_.size(); n > 0 && !clients_.empty(); --n) {
        auto& c = clients_.front();
        if (c.active + limit > now) {
            break;
        }
        if (c.state == Client::State::waiting) {
            touch(c); // waiting on lond is not idleness
            continue;
        }
        client_enter(c, Client::State::closed);
        ++closed;
    }
    if (closed > 0) {
        lg().info("Closed {} idle client connection{} (silent for {} s)", closed,
                  closed == 1 ? "" : "s", opts_.client_idle_timeout);
    }
    if (!clients_.empty()) {
        idle_timer_.arm_at(clients_.front().active + limit);
    }
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

void PeerWorker::reclaim_socket() {
    // With no link up there is nothing to listen for: at the next link up
    // the given-up child is gone, and its socket dead, so any listener
    // goes over it.
    if (draining_ || handing_off_ || links_ready_ == 0) {
        return;
    }
    const auto path = settings_.socket_path(peer_.id);
    if (listener_) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && st.st_dev == listener_file_.dev &&
            st.st_ino == listener_file_.ino) {
            return; // still ours
        }
        if (accepting_) {
            while (accept_clients() > 0) {
            }
            loop_.remove(listener_.get(), *this);
            accepting_ = false;
        }
        accept_timer_.cancel();
        listener_.reset(); // no connect reaches it any more: the path is elsewhere
    }
    // Also when the path was left to that child while it lived: it is
    // being given up on, perhaps not dead yet.
    take_live_path_ = true;
    open_listener();
    if (listener_) {
        lg().info("INFO: {} is ours again", path.string());
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
