#include "lonc/link.hpp"

#include "lonc/keys.hpp"
#include "lonc/log.hpp"
#include "lonc/net.hpp"

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

Link::Link(EventLoop& loop, LinkConfig cfg, LinkEvents& events, unsigned index)
    : loop_(loop), cfg_(std::move(cfg)), events_(events), index_(index), in_(cfg_.max_reply),
      handshake_timer_(loop,
                       [this] {
                           fail(std::string("handshake timed out at step '") + step() + "' after " +
                                std::to_string(cfg_.handshake_timeout) + " s");
                       }),
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
    fd_ = tcp_connect(cfg_.addr, cfg_.port, cfg_.source);
    if (!fd_) {
        const int e = errno;
        teardown(std::string("connect to ") + to_string(cfg_.addr) + ":" +
                     std::to_string(cfg_.port) + " failed: " + std::strerror(e),
                 true, Lost::fault);
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

void Link::fail(std::string_view reason) {
    teardown(reason, true, Lost::fault);
}

void Link::time_out(std::string_view reason) {
    teardown(reason, true, Lost::timeout);
}

void Link::reset(std::string_view reason) {
    if (stopped_) {
        return;
    }
    if (state_ != State::down) {
        teardown(reason, true, Lost::closed);
    }
    failures_ = 0;
    connect();
}

void Link::stop(std::string_view reason) {
    stopped_ = true;
    retry_timer_.cancel();
    if (state_ != State::down) {
        // On purpose (shutdown, a removed peer): not CRITICAL.
        teardown(reason, false, Lost::closed);
    }
}

void Link::teardown(std::string_view reason, bool reconnect, Lost cause) {
    const bool requested = cause == Lost::closed; // a reset, a shutdown, a removed peer
    const bool was_up = state_ == State::ready;
    const auto step_name = std::string(step());
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
    last_error_ = std::string(reason);
    set_state(State::down);

    if (was_up) {
        failures_ = 0;
        if (requested) {
            lg().info("INFO: Closing the connection to {} (link {}): {}", cfg_.remote_id, index_,
                      reason);
        } else {
            lg().error("Connection to {} lost (link {}): {}", cfg_.remote_id, index_, reason);
        }
    } else if (reconnect && !stopped_ && !requested) {
        ++failures_;
    }
    if (reconnect && !stopped_ && !requested) {
        schedule_retry();
        if (!was_up && (failures_ & (failures_ - 1)) == 0) { // 1, 2, 4, 8, ...
            const double wait =
                std::chrono::duration<double>(retry_timer_.deadline() - loop_.now()).count();
            if (failures_ == 1) {
                lg().warn("Couldn't connect to {} (link {}, at {}): {}; retrying in {:.1f} s",
                          cfg_.remote_id, index_, step_name, reason, wait);
            } else {
                lg().warn("{} still down after {} attempts (link {}): {}; retrying in {:.1f} s",
                          cfg_.remote_id, failures_, index_, reason, wait);
            }
        }
    }
    for (std::size_t i = 0; i < lost.size(); ++i) {
        // lond answers in order: it was on the oldest when the link broke.
        const auto why = cause == Lost::fault && i > 0 ? Lost::bystander : cause;
        events_.link_lost(*this, std::move(lost[i]), why);
    }
    events_.link_down(*this, was_up);
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
            fail(std::string("connect to ") + to_string(cfg_.addr) + ":" +
                 std::to_string(cfg_.port) + " failed: " + std::strerror(err));
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
            last_error_ = std::string("write failed: ") + std::strerror(errno);
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
            fail("reply longer than --max-reply (" + std::to_string(cfg_.max_reply) + " bytes)");
            return;
        }
        const auto n = ::recv(fd_.get(), space.data(), space.size(), MSG_DONTWAIT);
        if (n == 0) {
            fail(last_error_.rfind("write failed", 0) == 0
                     ? last_error_
                     : std::string("lond closed the connection during ") + step());
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            fail(std::string("read failed: ") + std::strerror(errno));
            return;
        }
        in_.commit(static_cast<std::size_t>(n));
        while (auto line = in_.next_line()) {
            if (!handle_line(*line)) {
                return;
            }
        }
        if (in_.overflowed()) {
            fail("reply longer than --max-reply (" + std::to_string(cfg_.max_reply) + " bytes)");
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
            fail("lond refused the connection at init (is this host's ip in its hosts.tab?)");
            return false;
        }
        set_state(State::authenticating);
        write_raw(std::string(line) + "\n"); // echo the challenge back unchanged
        return true;
    case State::authenticating:
        if (line != "ok") {
            fail("init failed: lond answered '" + log::printable(line) + "' to the challenge");
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
        failures_ = 0;
        set_state(State::ready);
        lg().info("Secure connection initialized (link {}, local port {})", index_, local_port_);
        events_.link_up(*this);
        return state_ == State::ready;
    }
    case State::ready: {
        if (inflight_.empty()) {
            fail("unexpected line from lond with no request outstanding: '" +
                 log::printable(line, 80) + "'");
            return false;
        }
        std::string_view reply = line;
        if (looks_encrypted(line)) {
            scratch_.clear();
            if (const auto err = cipher().decode(line, scratch_); err != DecodeError::none) {
                fail(std::string("malformed enc: reply (") + to_string(err) + "): '" +
                     log::printable(line, 80) + "'");
                return false;
            }
            reply = scratch_;
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
