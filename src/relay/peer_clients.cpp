// PeerWorker's side toward lonnet's clients: its listening socket
// lonSockDir/<hostid> (open while a link is up; accept paused at the
// descriptor limit) and each accepted client's state machine (Client).
#include "lonc/relay/peer_worker.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"

#include <spdlog/spdlog.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("peer");
}

// Released clients kept for reuse: lonnet connects once per request, and a
// kept Client (list node, buffers) makes accepting one allocation-free.
constexpr std::size_t spare_clients = 16;
// Descriptors kept free, besides every link's, for the child's own work
// (client_cap).
constexpr std::size_t own_work_fds = 8;

} // namespace

void Client::on_events(std::uint32_t events) {
    worker.client_events(*this, events);
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

} // namespace lonc
