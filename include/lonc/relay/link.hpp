// One TCP connection to a peer's lond: connect, handshake, then requests.
//
//   down -> connecting -> greeting ("init" sent, waiting for the challenge)
//        -> authenticating (challenge echoed, waiting for "ok")
//        -> keying ("ekey" sent, waiting for the buildkey) -> ready
//
// In ready, up to `pipeline` requests are written before their replies are
// read; lond answers in order, so replies pair with requests first in,
// first out. A request for an idle link is written at once; requests that
// join others in flight are written together at the end of the loop round
// (one write for all of them). Any failure tears the link down with a
// reason: written but unanswered requests are handed back (their clients
// get con_lost), and a reconnect is scheduled with jittered exponential
// backoff. A link counts as healthy only once lond answered a request on
// it: a healthy link that fails reconnects at once, but a link that dies
// before its first answer (a sick lond: handshakes work, every request
// kills it) is a failed attempt like a refused connect, and its failures
// add to the backoff (--retry-min .. --retry-max). An outage is logged once
// (CRITICAL when a link was lost), then summed up at most every
// outage_summary seconds; the link's first answer ends it. The link never reads a reply for a
// request it no longer has: a torn-down connection is closed, never reused.
#pragma once

#include "lonc/core/cipher.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/core/keys.hpp"
#include "lonc/core/line_buffer.hpp"
#include "lonc/relay/request.hpp"
#include "lonc/runtime/event_loop.hpp"

#include <cstdint>
#include <ctime>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace lonc {

struct LinkConfig {
    std::string remote_id; // the lond's host id
    std::string local_id;  // ours (lonHostID)
    in_addr addr{};
    std::uint16_t port = 0;
    std::optional<in_addr> source; // bind here first (our hosts.tab ip, when local)
    double handshake_timeout = 60;
    double retry_min = 2;
    double retry_max = 360;
    unsigned pipeline = 1;
    std::size_t max_reply = 134217728;
};

class LondLink;

// Why a link went down, or why an attempt to bring it up failed. The kind
// decides what the link does (lost_cause(), and whether it is a failure at
// all); Link::describe() renders the words for the log and the status
// files, in one place.
struct LinkError {
    enum class Kind : std::uint8_t {
        connect_failed,    // connect(2) failed at once or later: sys_errno
        refused,           // lond answered "refused" to init (it does not know our ip)
        bad_challenge,     // lond did not say "ok" to the echoed challenge: detail, its answer
        handshake_timeout, // the handshake took longer than handshake_timeout
        closed_by_lond,    // EOF from lond
        read_failed,       // recv(2) failed: sys_errno
        write_failed,      // send(2) failed (found by the read that follows): sys_errno
        reply_too_long,    // a line from lond longer than max_reply
        unexpected_line,   // a line from lond with no request outstanding: detail, the line
        bad_enc_reply,     // an enc: reply that does not decode: decode, detail (the line)
        timed_out,         // the owner: the oldest request ran past its deadline; detail, its words
        closed,            // the owner, on purpose (reconnect, shutdown); detail, its words
    };
    explicit LinkError(Kind k, int error = 0) : kind(k), sys_errno(error) {}
    LinkError(Kind k, std::string text, DecodeError why = DecodeError::none)
        : kind(k), decode(why), detail(std::move(text)) {}

    Kind kind;
    int sys_errno = 0;
    DecodeError decode = DecodeError::none;
    std::string detail;
};

// Why a request written to lond will never be answered.
enum class Lost {
    fault,     // the connection failed (EOF, reset, malformed reply) while lond was on it
    bystander, // the connection failed while lond was on an earlier request
    timeout,   // the oldest request on the link ran past --request-timeout
    closed,    // closed on purpose: an operator's reconnect, a shutdown
};

// What a link tells its owner (the peer worker). Calls come from the loop.
// A request handed to the link with send() comes back exactly once, through
// link_reply or link_lost.
class LinkEvents {
public:
    virtual void link_up(LondLink& link) = 0;
    // The link went down (or an attempt failed: was_up false).
    virtual void link_down(LondLink& link, bool was_up) = 0;
    virtual void link_reply(LondLink& link, RequestPtr req, std::string_view reply) = 0;
    // req was written but its answer will never come: answer con_lost.
    virtual void link_lost(LondLink& link, RequestPtr req, Lost why) = 0;

protected:
    ~LinkEvents() = default;
};

// A link as its owner sees it: what PeerWorker calls (Link below is the
// real one; a test gives the worker a scripted one). See Link for each.
class LondLink {
public:
    LondLink() = default;
    virtual ~LondLink() = default;
    LondLink(const LondLink&) = delete;
    LondLink& operator=(const LondLink&) = delete;

    virtual void connect() = 0;
    virtual bool retry_now() = 0;
    virtual void time_out(std::string_view reason) = 0;
    virtual void reset(std::string_view reason) = 0;
    virtual void stop(std::string_view reason) = 0;
    virtual void set_limits(const LinkConfig& cfg) = 0;
    [[nodiscard]] virtual bool ready() const noexcept = 0;
    [[nodiscard]] virtual bool can_send() const noexcept = 0;
    virtual void send(RequestPtr req) = 0;
    [[nodiscard]] virtual std::size_t in_flight() const noexcept = 0;
    [[nodiscard]] virtual const Request* oldest() const noexcept = 0;
    [[nodiscard]] virtual std::uint16_t local_port() const noexcept = 0;
    [[nodiscard]] virtual const std::string& last_error() const noexcept = 0;
    // lond answered a request on this connection (the last one, once down).
    [[nodiscard]] virtual bool answered() const noexcept { return true; }
    // Connections that came up and died with a request on the wire before
    // lond answered anything, since the link last answered; 0 when the
    // last attempt failed otherwise (lond is down now), or there was only
    // one (a lond killed mid-request is not sick).
    [[nodiscard]] virtual unsigned sick_attempts() const noexcept { return 0; }
};

// A failing link sums up its outage in lonc.log at most this often.
inline constexpr double outage_summary = 300;

class Link final : public LondLink, public EventLoop::Watcher, private EventLoop::Deferred {
public:
    enum class State { down, connecting, greeting, authenticating, keying, ready };

    Link(EventLoop& loop, LinkConfig cfg, LinkEvents& events, unsigned index);
    ~Link() override;
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    // Connects now if down (also cancels a scheduled retry).
    void connect() override;
    // A retry is scheduled: do it now, or --retry-min after the last
    // attempt if that was sooner (USR1 comes from lond on every init and
    // from lonnet on every critical con_lost). A link that is up or
    // connecting is left alone. True if it connects now.
    bool retry_now() override;
    // Tears down because the oldest request ran past its deadline (lond is
    // slow, not broken: the request is not blamed for it); reconnects later.
    void time_out(std::string_view reason) override;
    // Closes the connection, whatever its state, and connects again at once:
    // an operator's request (logged as information, not as a failure).
    void reset(std::string_view reason) override;
    // Closes for good (shutdown): no reconnect.
    void stop(std::string_view reason) override;
    // New timeouts and limits from a reload (handshake_timeout, retry_min,
    // retry_max, pipeline, max_reply); the connection is left as it is.
    void set_limits(const LinkConfig& cfg) override;

    [[nodiscard]] bool ready() const noexcept override { return state_ == State::ready; }
    [[nodiscard]] bool can_send() const noexcept override {
        return state_ == State::ready && inflight_.size() < cfg_.pipeline;
    }
    // Writes req (encrypting an "encrypt:" line). Requires can_send().
    void send(RequestPtr req) override;

    [[nodiscard]] std::size_t in_flight() const noexcept override { return inflight_.size(); }
    [[nodiscard]] const Request* oldest() const noexcept override {
        return inflight_.empty() ? nullptr : inflight_.front().get();
    }
    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] EventLoop::TimePoint since() const noexcept { return since_; }
    [[nodiscard]] unsigned index() const noexcept { return index_; }
    [[nodiscard]] unsigned failures() const noexcept { return failures_; }
    [[nodiscard]] std::uint16_t local_port() const noexcept override { return local_port_; }
    // The words of the last teardown (describe()), "" before the first.
    [[nodiscard]] const std::string& last_error() const noexcept override { return last_error_; }
    [[nodiscard]] bool answered() const noexcept override { return answered_; }
    [[nodiscard]] unsigned sick_attempts() const noexcept override {
        return last_sick_ && sick_attempts_ >= 2 ? sick_attempts_ : 0;
    }

    void on_events(std::uint32_t events) override;

private:
    // Tears down for error. A failure (not closed on purpose) counts against
    // the link and a reconnect follows, with backoff, unless stop() was called.
    void fail(const LinkError& error);
    // The words for error: the link's address, limits and current step
    // fill in what error does not carry.
    [[nodiscard]] std::string describe(const LinkError& error) const;
    void set_state(State s);
    void on_connected();
    void on_readable();
    bool handle_line(std::string_view line); // false: link torn down
    void write_raw(std::string_view data);
    void flush();
    void run_deferred() override; // the batched flush
    void schedule_retry();
    // One line for a failure that is part of an outage: the first one, then
    // a summary at most every outage_summary seconds.
    void log_failure(bool was_up, const std::string& step_name, const std::string& reason);
    [[nodiscard]] const LinkCipher& cipher();
    [[nodiscard]] const char* step() const noexcept;

    EventLoop& loop_;
    LinkConfig cfg_;
    LinkEvents& events_;
    unsigned index_;
    UniqueFd fd_;
    State state_ = State::down;
    EventLoop::TimePoint since_{};
    LineBuffer in_;
    std::string out_;
    std::size_t out_off_ = 0;
    bool want_out_ = false;
    bool flush_deferred_ = false;        // requests wait for the end of the round
    std::vector<RequestPtr> inflight_;   // FIFO; front is the oldest
    LinkKey key_{};                      // derived at "ekey"
    std::unique_ptr<LinkCipher> cipher_; // built from key_ on first use
    std::string scratch_;
    Timer handshake_timer_;
    Timer retry_timer_;
    unsigned failures_ = 0;            // attempts since lond last answered on the link
    bool answered_ = false;            // lond answered a request on this connection
    unsigned sick_attempts_ = 0;       // up, then down unanswered, since the last answer
    bool last_sick_ = false;           // the last failure was one of those
    bool outage_logged_ = false;       // the outage's first line is written
    std::time_t outage_since_ = 0;     // wall time of its first failure
    EventLoop::TimePoint summed_up_{}; // the outage's last line
    EventLoop::TimePoint attempted_{}; // the last connect()
    bool stopped_ = false;
    std::uint16_t local_port_ = 0;
    std::optional<LinkError> write_error_; // a failed send, reported by the next read
    std::string last_error_;
    std::minstd_rand rng_;
};

[[nodiscard]] const char* to_string(Link::State s) noexcept;
// What an error means for the requests lond was working on.
[[nodiscard]] Lost lost_cause(LinkError::Kind kind) noexcept;

} // namespace lonc
