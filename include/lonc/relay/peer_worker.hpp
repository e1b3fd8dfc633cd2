// A child's whole life for one peer host: its lond link(s), the UNIX
// socket lonSockDir/<hostid> and its clients, the request queue, and the
// delivery of that host's delayed messages.
//
// One event loop, no threads. No client ever waits behind another client's
// I/O: reads and writes are non-blocking, a client is read only while it
// has no request outstanding and no reply unsent (so a slow or silent
// client holds only its own connection), and each request gets exactly one
// reply line: lond's answer, or con_lost (the only other answer lonnet
// understands: its critical() then retries and spools the request).
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/core/histogram.hpp"
#include "lonc/core/line_buffer.hpp"
#include "lonc/core/options.hpp"
#include "lonc/relay/link.hpp"
#include "lonc/relay/request.hpp"
#include "lonc/relay/spooler.hpp"
#include "lonc/runtime/event_loop.hpp"
#include "lonc/runtime/net.hpp"

#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace lonc {

class PeerWorker;

// One accepted client connection. Its life is Client::State, changed only
// by PeerWorker::client_enter (the transitions, and what each one does to
// the descriptor and its epoll registration, are there and nowhere else):
//
//   idle ------ a line becomes its request ------------> waiting
//   idle ------ a reply (con_lost) that does not fit --> replying
//   waiting --- answered ------------------------------> idle
//   replying -- the rest of the reply written ---------> idle
//   idle, waiting, replying -- EOF, error, idle, drain --> closed
//   closed ---- taken for a new connection ------------> idle
//
// idle is also where lines already buffered are taken, one at a time. A
// waiting client that closes gives up its request (the request's client
// pointer is cleared; lond's answer is dropped) and is released at once.
struct Client final : EventLoop::Watcher {
    enum class State : unsigned char {
        idle,     // no request outstanding, every reply written: reads on
        waiting,  // its request is queued or on a link
        replying, // a reply is partly written (EPOLLOUT)
        closed,   // descriptor closed; released (kept spare, or freed)
    };
    // The transitions drawn above.
    [[nodiscard]] static constexpr bool may_enter(State from, State to) noexcept {
        switch (to) {
        case State::idle:
            return from != State::idle;
        case State::waiting:
        case State::replying:
            return from == State::idle;
        case State::closed:
            return from != State::closed;
        }
        return false;
    }

    Client(PeerWorker& w, std::size_t max_line) : worker(w), in(max_line) {}
    void on_events(std::uint32_t events) override;

    PeerWorker& worker;
    UniqueFd fd;
    LineBuffer in;
    std::string out; // reply bytes not yet written (replying)
    std::size_t out_off = 0;
    State state = State::closed;
    std::uint32_t watched = 0;      // the events registered with the loop for fd
    RequestPtr req;                 // its request slot, while no request is out
    Request* outstanding = nullptr; // not owned: its request, while waiting
    bool fresh = false;             // accepted, no line taken yet
    EventLoop::TimePoint active{};
    std::list<Client>::iterator self;
};

struct PeerStats {
    std::uint64_t requests = 0;     // client requests answered by lond
    std::uint64_t con_lost = 0;     // client requests answered con_lost
    std::uint64_t rejected = 0;     // answered con_lost: queue full, line too long
    std::uint64_t timeouts = 0;     // requests that ran past --request-timeout
    std::uint64_t link_ups = 0;     // handshakes completed
    std::uint64_t link_downs = 0;   // links that were up and went down (not closed for idleness)
    std::uint64_t links_opened = 0; // links opened on demand (each one handshake)
    std::uint64_t links_closed = 0; // links opened on demand, closed when idle
    // Attempts that failed: no handshake, or down before lond answered.
    std::uint64_t link_failures = 0;
    std::uint64_t clients_accepted = 0;
};

class PeerWorker final : public LinkEvents, public EventLoop::Watcher, private EventLoop::Deferred {
public:
    // Makes the worker's links (index from 1); by default real Links. A
    // test passes one that makes scripted links.
    using LinkFactory = std::function<std::unique_ptr<LondLink>(
        EventLoop& loop, const LinkConfig& cfg, LinkEvents& events, unsigned index)>;

    // Time is the loop's (EventLoop::now() and Timers): a test that gives
    // the loop a fake clock drives every timeout of the worker.
    PeerWorker(EventLoop& loop, Settings settings, Peer peer, Peer self, Options opts,
               const LinkFactory& make_link = {});
    ~PeerWorker();
    PeerWorker(const PeerWorker&) = delete;
    PeerWorker& operator=(const PeerWorker&) = delete;

    // Connects the links. The socket appears once one is up.
    void start();
    // Links that are down and waiting retry now (at most once per
    // --retry-min); links that are up are untouched. True if one connects now.
    bool retry_now();
    // Every link closes (if up) and connects again now (lonctl reconnect).
    void reconnect();
    // New timeouts and limits (a reload): links, new requests, new clients
    // and the spooler use them from now on. --connections stays as it was:
    // every link is kept. A lower --max-connections closes links opened on
    // demand as they become idle, never one with a request on it.
    void set_options(const Options& opts);
    [[nodiscard]] const Options& options() const noexcept { return opts_; }
    // A file appeared in delayed/ (its name; "*": look at everything).
    void spool_hint(std::string_view name);
    // Stop taking requests: remove the socket, let what is queued or on the
    // wire finish for at most `grace`, then stop the loop with exit code 0.
    // Draining already (a hand-off), the sooner of the two limits holds.
    void drain(double grace);
    // Another child of this peer has put its socket at our path (an
    // upgrade): keep accepting for a moment (a connect that found the old
    // socket just before the switch still lands), then stop listening for
    // good (a link that comes up later opens no listener and delivers
    // nothing), leaving the path alone, and drain: the links stay until
    // every request held is answered by lond or has timed out under
    // --request-timeout (a slow request is not cut off: lonnet would run
    // it again through the new child). Clients that connected but have
    // not sent their line yet are waited for, so no accepted client goes
    // unanswered.
    void hand_off();
    // The socket path may name another child's socket now (one that was
    // to take over, and was given up on): if it is not ours, put a fresh
    // listener of ours there, after taking what waits on the old one; also
    // when a link up left the path to that child (it is being given up on,
    // perhaps not dead yet). With no link up, nothing changes.
    void reclaim_socket();
    // This worker replaces another child of the peer (lonctl upgrade): its
    // first listener goes over the predecessor's live socket. Any other
    // listener leaves a socket another process listens on alone (issue
    // 24): a child whose link comes back during an upgrade must not take
    // the path from its successor, whose socket would be lost for good
    // once the hand-off removes its own.
    void expect_predecessor() noexcept {
        take_live_path_ = true;
        spooler_.expect_predecessor();
    }

    [[nodiscard]] const PeerStats& stats() const noexcept { return stats_; }
    [[nodiscard]] const Peer& peer() const noexcept { return peer_; }
    [[nodiscard]] bool link_up() const noexcept;
    // "up", "down", or "sick": no link has answered, and links came up and
    // died before lond answered a request.
    [[nodiscard]] std::string health() const;
    // health() is "sick".
    [[nodiscard]] bool sick() const noexcept;
    [[nodiscard]] EventLoop::TimePoint link_since() const noexcept { return link_since_; }
    [[nodiscard]] std::time_t link_since_wall() const noexcept { return link_since_wall_; }
    [[nodiscard]] std::size_t queue_depth() const noexcept { return queued_clients_; }
    [[nodiscard]] std::size_t client_count() const noexcept { return clients_.size(); }
    [[nodiscard]] const Spooler& spooler() const noexcept { return spooler_; }
    // Arrival to reply of every client request.
    [[nodiscard]] const LatencyHistogram& latency() const noexcept { return latency_; }
    // Called when the peer goes from no link up to one up, and back.
    std::function<void(bool up)> on_link_state;
    // The links: the first --connections are kept for good; those after
    // them were opened on demand (a link that failed may stay listed, down,
    // until the end of the loop round).
    [[nodiscard]] const std::vector<std::unique_ptr<LondLink>>& links() const noexcept {
        return links_;
    }
    // The most links the worker opens (--max-connections, at least
    // --connections).
    [[nodiscard]] unsigned max_links() const noexcept;
    // A one-line summary for loncstatus.txt and lonc.log status fields.
    [[nodiscard]] std::string summary() const;

    // LinkEvents
    void link_up(LondLink& link) override;
    void link_down(LondLink& link, bool was_up) override;
    void link_reply(LondLink& link, RequestPtr req, std::string_view reply) override;
    void link_lost(LondLink& link, RequestPtr req, Lost why) override;

    // The listening socket.
    void on_events(std::uint32_t events) override;

private:
    friend struct Client;

    static constexpr std::string_view con_lost = "con_lost";
    // A client's read buffer keeps this much capacity between requests.
    static constexpr std::size_t client_keep_capacity = 4096;

    // Listener (peer_clients.cpp)
    void open_listener();
    void close_listener();
    void on_listener_timer();
    std::size_t accept_clients(); // returns how many it took
    void pause_accept(const std::string& why);
    [[nodiscard]] std::size_t client_cap() const noexcept;

    // Clients (peer_clients.cpp)
    void client_enter(Client& c, Client::State next);
    void client_watch(Client& c, std::uint32_t events);
    void client_events(Client& c, std::uint32_t events);
    void client_read(Client& c);
    void client_lines(Client& c);
    [[nodiscard]] bool client_line(Client& c, std::string_view line);
    [[nodiscard]] bool client_reply(Client& c, std::string_view text);
    void client_flush(Client& c);
    void client_release(Client& c);
    void touch(Client& c);
    void on_idle_timer();

    // Requests
    void enqueue(RequestPtr req);
    RequestPtr take_front(); // pops pending_'s head, keeping counts right
    void dispatch();
    void complete(RequestPtr req, std::string_view reply, bool from_lond);
    void on_request_timer();
    void on_grace_timer();
    void arm_request_timer();
    void maybe_finish_drain();

    // Links on demand (peer_links.cpp)
    [[nodiscard]] std::size_t link_at(const LondLink& link) const noexcept;
    [[nodiscard]] bool extra(std::size_t i) const noexcept { return i >= kept_; }
    [[nodiscard]] std::size_t live_links() const noexcept; // not down for good
    [[nodiscard]] bool may_open_link() const noexcept;
    void open_links(); // one more link per request waiting, up to max_links()
    void extra_down(std::size_t i, bool was_up);
    void mark_idle(std::size_t i);
    void close_idle_links();      // and those over max_links(); arms link_idle_timer_
    void run_deferred() override; // removes the extra links that are down
    void defer_reap();
    // Every link, for good (a shutdown): an extra link's end is no failure.
    void stop_links(std::string_view reason);
    // Not draining, or handing off within the drain's grace.
    [[nodiscard]] bool serving() const noexcept;

    EventLoop& loop_;
    Settings settings_;
    Peer peer_;
    Peer self_;
    Options opts_;

    LinkFactory make_link_;
    LinkConfig link_cfg_;
    std::vector<std::unique_ptr<LondLink>> links_;
    // Per link (same index as links_): what on-demand links need.
    struct LinkUse {
        EventLoop::TimePoint idle_since{};
        unsigned index = 0;    // the link's number in the log
        bool answered = false; // lond answered a request on it
        bool closing = false;  // we closed it: not a failure
        bool dead = false;     // an extra link that went down: removed at the round's end
    };
    std::vector<LinkUse> use_;
    unsigned kept_ = 0;                 // --connections at the start
    unsigned extra_failures_ = 0;       // extra links in a row that failed before answering
    EventLoop::TimePoint open_after_{}; // no extra link before this (backoff)
    Timer open_timer_;                  // the backoff's end: try again
    Timer link_idle_timer_;             // closes extra links idle for --link-idle-timeout
    bool reap_deferred_ = false;
    EventLoop::TimePoint link_since_{};
    std::time_t link_since_wall_ = 0;
    unsigned links_ready_ = 0;
    // Each link's connection: the stats_.link_ups count when it came up
    // (the spooler tells the connection a message died on from newer ones).
    std::map<const LondLink*, std::uint64_t> connection_;

    UniqueFd listener_;
    // The socket file listener_ was bound to: another child of this peer
    // may have replaced it since, and then it is not ours to remove.
    SocketFile listener_file_;
    // The next listener may go over a socket another process listens on
    // (expect_predecessor(), reclaim_socket()).
    bool take_live_path_ = false;
    // The last open found another process listening on the path (logged
    // once; tried again every second).
    bool path_held_elsewhere_ = false;
    bool accepting_ = false;
    Timer accept_timer_; // retries a failed bind; resumes accept after EMFILE
    // Descriptors left for clients and links: RLIMIT_NOFILE less those the
    // child had open when it first listened (0: no limit known).
    std::size_t fd_budget_ = 0;

    std::list<Client> clients_;      // least recently active first
    std::list<Client> spare_;        // released, kept for the next connections
    std::deque<RequestPtr> pending_; // waiting for a link, oldest first
    std::size_t queued_clients_ = 0; // client requests in pending_ (--max-queue)
    Timer request_timer_;
    Timer grace_timer_;
    Timer idle_timer_;

    RequestPtr pong_; // the pong request; empty while it is out
    Timer pong_timer_;

    Spooler spooler_;

    bool draining_ = false;
    bool handing_off_ = false;
    Timer handoff_timer_;
    Timer drain_timer_;
    PeerStats stats_;
    LatencyHistogram latency_;
    bool queue_full_logged_ = false;
    bool emfile_logged_ = false;
};

} // namespace lonc
