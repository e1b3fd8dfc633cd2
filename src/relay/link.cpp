#include "lonc/relay/link.hpp"

#include "lonc/core/clock_text.hpp"
#include "lonc/core/keys.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sys/socket.h>

namespace lonc {
namespace {

constexpr std::size_t read_chunk = 65536;
// Keep at most this much buffer capacity on an idle link.
constexpr std::size_t idle_capacity = std::size_t{256} * 1024;

spdlog::logger& lg() {
    return log::get("link");
}

using Kind = LinkError::Kind;

} // namespace

const char* to_string(Link::State s) noexcept {
    switch (s) {
    case Link::State::down:
        return "down";
    case Link::State::connecting:
        return "connecting";
    case Link::State::greeting:
        return "init";
    case Link::State::authenticating:
        return "challenge";
    case Link::State::keying:
        return "ekey";
    case Link::State::ready:
        return "up";
    }
    return "?";
}

Lost lost_cause(LinkError::Kind kind) noexcept {
    switch (kind) {
    case LinkError::Kind::timed_out:
        return Lost::timeout;
    case LinkError::Kind::closed:
        return Lost::closed;
    case LinkError::Kind::connect_failed:
    case LinkError::Kind::refused:
    case LinkError::Kind::bad_challenge:
    case LinkError::Kind::handshake_timeout:
    case LinkError::Kind::closed_by_lond:
    case LinkError::Kind::read_failed:
    case LinkError::Kind::write_failed:
    case LinkError::Kind::reply_too_long:
    case LinkError::Kind::unexpected_line:
    case LinkError::Kind::bad_enc_reply:
        break;
    }
    return Lost::fault;
}

std::string Link::describe(const LinkError& error) const {
    switch (error.kind) {
    case Kind::connect_failed:
        return "connect to " + to_string(cfg_.addr) + ":" + std::to_string(cfg_.port) +
               " failed: " + std::strerror(error.sys_errno);
    case Kind::refused:
        return "lond refused the connection at init (is this host's ip in its hosts.tab?)";
    case Kind::bad_challenge:
        return "init failed: lond answered '" + error.detail + "' to the challenge";
    case Kind::handshake_timeout:
        return std::string("handshake timed out at step '") + step() + "' after " +
               std::to_string(cfg_.handshake_timeout) + " s";
    case Kind::closed_by_lond:
        return std::string("lond closed the connection during ") + step();
    case Kind::read_failed:
        return std::string("read failed: ") + std::strerror(error.sys_errno);
    case Kind::write_failed:
        return std::string("write failed: ") + std::strerror(error.sys_errno);
    case Kind::reply_too_long:
        return "reply longer than --max-reply (" + std::to_string(cfg_.max_reply) + " bytes)";
    case Kind::unexpected_line:
        return "unexpected line from lond with no request outstanding: '" + error.detail + "'";
    case Kind::bad_enc_reply:
        return std::string("malformed enc: reply (") + to_string(error.decode) + "): '" +
               error.detail + "'";
    case Kind::timed_out:
    case Kind::closed:
        break;
    }
    return error.detail;
}

Link::Link(EventLoop& loop, LinkConfig cfg, LinkEvents& events, unsigned index)
    : loop_(loop), cfg_(std::move(cfg)), events_(events), index_(index), in_(cfg_.max_reply),
      handshake_timer_(loop, [this] { fail(LinkError(Kind::handshake_timeout)); }),
      retry_timer_(loop, [this] { connect(); }),
      rng_(static_cast<std::minstd_rand::result_type>(std::random_device{}())) {
    inflight_.reserve(cfg_.pipeline);
    since_ = loop_.now();
}

Link::~Link() {
    if (flush_deferred_) {
        loop_.cancel(*this);
    }
    if (fd_) {
        loop_.remove(fd_.get(), *this);
    }
}

const char* Link::step() const noexcept {
    return to_string(state_);
}

void Link::set_state(State s) {
    state_ = s;
    since_ = loop_.now();
}

void Link::connect() {
    if (state_ != State::down || stopped_) {
        return;
    }
    retry_timer_.cancel();
    attempted_ = loop_.now();
    answered_ = false;
    fd_ = tcp_connect(cfg_.addr, cfg_.port, cfg_.source);
    if (!fd_) {
        fail(LinkError(Kind::connect_failed, errno));
        return;
    }
    set_state(State::connecting);
    handshake_timer_.arm_in(seconds(cfg_.handshake_timeout));
    loop_.add(fd_.get(), EPOLLIN | EPOLLOUT, *this);
    want_out_ = true;
}

void Link::set_limits(const LinkConfig& cfg) {
    cfg_.handshake_timeout = cfg.handshake_timeout;
    cfg_.retry_min = cfg.retry_min;
    cfg_.retry_max = cfg.retry_max;
    cfg_.pipeline = cfg.pipeline;
    cfg_.max_reply = cfg.max_reply;
    in_.set_max_line(cfg.max_reply);
}

bool Link::retry_now() {
    if (state_ != State::down || stopped_) {
        return false;
    }
    const auto earliest = attempted_ + seconds(cfg_.retry_min);
    if (loop_.now() >= earliest) {
        connect();
        return true;
    }
    if (!retry_timer_.armed() || retry_timer_.deadline() > earliest) {
        retry_timer_.arm_at(earliest);
    }
    return false;
}

void Link::time_out(std::string_view reason) {
    fail(LinkError(Kind::timed_out, std::string(reason)));
}

void Link::reset(std::string_view reason) {
    if (stopped_) {
        return;
    }
    if (state_ != State::down) {
        fail(LinkError(Kind::closed, std::string(reason)));
    }
    failures_ = 0;
    connect();
}

void Link::stop(std::string_view reason) {
    stopped_ = true;
    retry_timer_.cancel();
    if (state_ != State::down) {
        // On purpose (shutdown, a removed peer): not CRITICAL.
        fail(LinkError(Kind::closed, std::string(reason)));
    }
}

void Link::fail(const LinkError& error) {
    const Lost cause = lost_cause(error.kind);
    const bool requested = cause == Lost::closed; // a reset, a shutdown, a removed peer
    const bool retry = !requested && !stopped_;
    const bool was_up = state_ == State::ready;
    const auto step_name = std::string(step());
    const auto reason = describe(error); // names the step: before the state changes
    if (fd_) {
        loop_.remove(fd_.get(), *this);
        fd_.reset();
    }
    handshake_timer_.cancel();
    in_.reset();
    out_.clear();
    out_.shrink_to_fit();
    out_off_ = 0;
    want_out_ = false;
    cipher_.reset();
    auto lost = std::move(inflight_);
    inflight_.clear();
    inflight_.reserve(cfg_.pipeline);
    write_error_.reset();
    last_error_ = reason;
    set_state(State::down);

    const bool healthy = was_up && answered_; // answered_ stays for answered()
    if (requested && was_up) {
        lg().info("INFO: Closing the connection to {} (link {}): {}", cfg_.remote_id, index_,
                  reason);
    }
    if (retry) {
        if (healthy) {
            failures_ = 0; // reconnects at once
            last_sick_ = false;
        } else {
            ++failures_;
            last_sick_ = was_up && !lost.empty(); // died on a request, unanswered
            sick_attempts_ += last_sick_ ? 1 : 0;
        }
        schedule_retry();
        log_failure(was_up, step_name, reason);
    }
    for (std::size_t i = 0; i < lost.size(); ++i) {
        // lond answers in order: it was on the oldest when the link broke.
        const auto why = cause == Lost::fault && i > 0 ? Lost::bystander : cause;
        events_.link_lost(*this, std::move(lost[i]), why);
    }
    events_.link_down(*this, was_up);
}

void Link::log_failure(bool was_up, const std::string& step_name, const std::string& reason) {
    const auto now = loop_.now();
    const double wait = std::chrono::duration<double>(retry_timer_.deadline() - now).count();
    if (outage_since_ == 0) {
        outage_since_ = std::time(nullptr);
    }
    if (was_up && failures_ == 0) { // a link that answered is lost
        lg().error("Connection to {} lost (link {}): {}", cfg_.remote_id, index_, reason);
        outage_logged_ = true;
        summed_up_ = now;
        return;
    }
    if (was_up && !outage_logged_) {
        lg().error("Connection to {} lost (link {}): {}; lond answered no request on it: "
                   "retrying with backoff, in {:.1f} s",
                   cfg_.remote_id, index_, reason, wait);
        outage_logged_ = true;
        summed_up_ = now;
        return;
    }
    if (was_up) {
        if (now - summed_up_ >= seconds(outage_summary)) {
            lg().warn("{} still failing: {} attempts since {} (link {}); last: {}; retrying in "
                      "{:.1f} s",
                      cfg_.remote_id, failures_, perl_localtime(outage_since_), index_, reason,
                      wait);
            summed_up_ = now;
        }
        return;
    }
    if ((failures_ & (failures_ - 1)) == 0) { // 1, 2, 4, 8, ...
        if (failures_ == 1) {
            lg().warn("Couldn't connect to {} (link {}, at {}): {}; retrying in {:.1f} s",
                      cfg_.remote_id, index_, step_name, reason, wait);
        } else {
            lg().warn("{} still down after {} attempts (link {}): {}; retrying in {:.1f} s",
                      cfg_.remote_id, failures_, index_, reason, wait);
        }
    }
}

void Link::schedule_retry() {
    if (failures_ == 0) {
        retry_timer_.arm_in(EventLoop::Clock::duration::zero()); // first: at once
        return;
    }
    const double exp = std::min(30.0, static_cast<double>(failures_ - 1));
    const double base = std::min(cfg_.retry_max, cfg_.retry_min * std::pow(2.0, exp));
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    retry_timer_.arm_in(seconds(base * jitter(rng_)));
}

void Link::on_events(std::uint32_t events) {
    if (state_ == State::connecting) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
            return;
        }
        if (const int err = socket_error(fd_.get()); err != 0) {
            fail(LinkError(Kind::connect_failed, err));
            return;
        }
        on_connected();
        return;
    }
    if ((events & EPOLLOUT) != 0 && want_out_) {
        flush();
        if (state_ == State::down) {
            return;
        }
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        on_readable();
    }
}

void Link::on_connected() {
    sockaddr_in local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&local), &len) == 0) {
        local_port_ = ntohs(local.sin_port);
    }
    set_state(State::greeting);
    loop_.modify(fd_.get(), EPOLLIN, *this);
    want_out_ = false;
    write_raw("init\n");
}

void Link::write_raw(std::string_view data) {
    if (out_off_ == out_.size()) {
        out_.clear();
        out_off_ = 0;
    }
    out_.append(data);
    flush();
}

void Link::send(RequestPtr req) {
    if (out_off_ == out_.size()) {
        out_.clear();
        out_off_ = 0;
    }
    const bool was_empty = out_.empty();
    constexpr std::string_view prefix = "encrypt:";
    const std::string_view line = req->line;
    if (line.substr(0, prefix.size()) == prefix) {
        cipher().encode(line.substr(prefix.size()), out_);
    } else {
        out_.append(line);
    }
    out_ += '\n';
    inflight_.push_back(std::move(req));
    if (!was_empty || want_out_ || flush_deferred_) {
        return; // already waiting to be written
    }
    if (inflight_.size() == 1) {
        flush(); // lond is idle, waiting for this one
    } else {
        flush_deferred_ = true; // lond is busy: gather what else comes
        loop_.defer(*this);
    }
}

const LinkCipher& Link::cipher() {
    if (!cipher_) {
        cipher_ = std::make_unique<LinkCipher>(key_);
    }
    return *cipher_;
}

void Link::run_deferred() {
    flush_deferred_ = false;
    if (fd_ && out_off_ < out_.size() && !want_out_) {
        flush();
    }
}

// Writes what is queued. Never tears the link down itself: it may run
// inside the owner's dispatch loop. A write error shuts the socket down so
// the next round reads EOF and fails the link from the loop.
void Link::flush() {
    while (out_off_ < out_.size()) {
        const auto n = ::send(fd_.get(), out_.data() + out_off_, out_.size() - out_off_,
                              MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!want_out_) {
                    want_out_ = true;
                    loop_.modify(fd_.get(), EPOLLIN | EPOLLOUT, *this);
                }
                return;
            }
            write_error_ = LinkError(Kind::write_failed, errno);
            ::shutdown(fd_.get(), SHUT_RDWR);
            out_off_ = out_.size();
            break;
        }
        out_off_ += static_cast<std::size_t>(n);
    }
    if (want_out_) {
        want_out_ = false;
        loop_.modify(fd_.get(), EPOLLIN, *this);
    }
    if (out_.capacity() > idle_capacity) {
        out_.clear();
        out_.shrink_to_fit();
        out_off_ = 0;
    }
}

void Link::on_readable() {
    for (;;) {
        auto space = in_.prepare(read_chunk);
        if (space.empty()) {
            fail(LinkError(Kind::reply_too_long));
            return;
        }
        const auto n = ::recv(fd_.get(), space.data(), space.size(), MSG_DONTWAIT);
        if (n == 0) {
            // A failed write shut the socket down: that is the news, not the EOF.
            fail(write_error_.value_or(LinkError(Kind::closed_by_lond)));
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            fail(LinkError(Kind::read_failed, errno));
            return;
        }
        in_.commit(static_cast<std::size_t>(n));
        while (auto line = in_.next_line()) {
            if (!handle_line(*line)) {
                return;
            }
        }
        if (in_.overflowed()) {
            fail(LinkError(Kind::reply_too_long));
            return;
        }
        if (static_cast<std::size_t>(n) < space.size()) {
            break; // drained: the next byte comes with the next wakeup
        }
    }
    if (in_.buffered() == 0 && in_.capacity() > idle_capacity) {
        in_.reset();
    }
}

bool Link::handle_line(std::string_view line) {
    switch (state_) {
    case State::greeting:
        if (line == "refused") {
            fail(LinkError(Kind::refused));
            return false;
        }
        set_state(State::authenticating);
        write_raw(std::string(line) + "\n"); // echo the challenge back unchanged
        return true;
    case State::authenticating:
        if (line != "ok") {
            fail(LinkError(Kind::bad_challenge, log::printable(line)));
            return false;
        }
        set_state(State::keying);
        write_raw("ekey\n");
        return true;
    case State::keying: {
        // The IDEA key schedule waits for the first encrypted line: a
        // child that never sees one never runs (nor pages in) Crypto++,
        // which made some 20 of the page faults of a child's start.
        key_ = derive_link_key(cfg_.remote_id, cfg_.local_id, line);
        cipher_.reset();
        handshake_timer_.cancel();
        set_state(State::ready);
        if (sick_attempts_ == 0) { // not once per attempt while lond is sick
            lg().info("Secure connection initialized (link {}, local port {})", index_,
                      local_port_);
        }
        events_.link_up(*this);
        return state_ == State::ready;
    }
    case State::ready: {
        if (inflight_.empty()) {
            fail(LinkError(Kind::unexpected_line, log::printable(line, 80)));
            return false;
        }
        std::string_view reply = line;
        if (looks_encrypted(line)) {
            scratch_.clear();
            if (const auto err = cipher().decode(line, scratch_); err != DecodeError::none) {
                fail(LinkError(Kind::bad_enc_reply, log::printable(line, 80), err));
                return false;
            }
            reply = scratch_;
        }
        if (!answered_) {
            answered_ = true; // a healthy link from now on
            if (failures_ > 0 && outage_logged_) {
                lg().info("INFO: {} answers again (link {}) after {} failed attempts since {}",
                          cfg_.remote_id, index_, failures_, perl_localtime(outage_since_));
            }
            failures_ = 0;
            sick_attempts_ = 0;
            last_sick_ = false;
            outage_logged_ = false;
            outage_since_ = 0;
        }
        RequestPtr req = std::move(inflight_.front());
        inflight_.erase(inflight_.begin());
        const auto before = state_;
        const auto fd = fd_.get();
        events_.link_reply(*this, std::move(req), reply);
        if (scratch_.capacity() > idle_capacity) {
            std::string().swap(scratch_); // keep no reply-sized buffer between replies
        }
        return state_ == before && fd_.get() == fd;
    }
    case State::down:
    case State::connecting:
        break;
    }
    return false;
}

} // namespace lonc
