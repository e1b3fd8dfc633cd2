// PeerWorker's links on demand. lond answers one request per connection
// at a time: when every link to the host is busy and a client's request
// waits, the worker opens one more link per waiting client request, up to
// --max-connections (a delayed message or the pong opens none);
// an extra link idle for --link-idle-timeout is closed. The first
// --connections links are kept for good (a quiet host sees one persistent
// connection, as with the original). An extra link that fails before lond
// answered anything on it is not retried: the worker goes on with the links
// it has and opens none for the link backoff (--retry-min doubling up to
// --retry-max), then one at a time until one answers, so a host that
// refuses or drops new links sees no storm. A sick peer (issue 23: its
// links die before lond answers) gets none: no more handshakes than its
// kept links make.
#include "lonc/relay/peer_worker.hpp"
#include "lonc/runtime/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("peer");
}

// An extra link that failed is followed by the next no sooner than this,
// whatever --retry-min says (0 would let a refusing host see a loop).
constexpr double min_backoff = 1.0;

} // namespace

unsigned PeerWorker::max_links() const noexcept {
    return std::max(opts_.max_connections, kept_);
}

std::size_t PeerWorker::link_at(const LondLink& link) const noexcept {
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (links_[i].get() == &link) {
            return i;
        }
    }
    assert(false && "a link the worker does not have");
    return 0;
}

std::size_t PeerWorker::live_links() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(use_.begin(), use_.end(), [](const LinkUse& u) { return !u.dead; }));
}

// Handing off, the requests still held get links too: a slow one would
// otherwise hold them for as long as it takes (--request-timeout at most).
bool PeerWorker::serving() const noexcept {
    return !draining_ || (handing_off_ && drain_timer_.armed());
}

bool PeerWorker::may_open_link() const noexcept {
    return serving() && links_ready_ > 0 && loop_.now() >= open_after_ &&
           live_links() < max_links() && !sick();
}

void PeerWorker::open_links() {
    if (!may_open_link()) {
        if (serving() && links_ready_ > 0 && loop_.now() < open_after_ &&
            live_links() < max_links()) {
            open_timer_.arm_at(open_after_); // requests wait: try when the backoff is over
        }
        return;
    }
    // Only clients (lonnet's workers) wait for a link: the delayed message
    // and the pong take the next free one, as with one link, so the
    // spooler's rules see the same links either way.
    const std::size_t waiting = queued_clients_;
    // Since a new link failed, one at a time until one answers: the end of
    // the backoff brings the host one attempt, not one per waiting request.
    const std::size_t wanted = extra_failures_ > 0 ? 1 : waiting;
    std::size_t opening = 0;
    for (std::size_t i = kept_; i < links_.size(); ++i) {
        if (!use_[i].dead && !links_[i]->ready()) {
            ++opening;
        }
    }
    std::size_t live = live_links();
    while (opening < wanted && live < max_links()) {
        unsigned index = 1; // the lowest free: "link N" in the log stays small
        while (std::any_of(use_.begin(), use_.end(),
                           [&](const LinkUse& u) { return u.index == index; })) {
            ++index;
        }
        LinkConfig cfg = link_cfg_;
        cfg.reconnect = false;
        links_.push_back(make_link_ ? make_link_(loop_, cfg, *this, index)
                                    : std::make_unique<Link>(loop_, cfg, *this, index));
        use_.push_back({});
        use_.back().index = index;
        ++opening;
        ++live;
        ++stats_.links_opened;
        lg().debug("Opening link {} to {}: {} request{} waiting, every link busy", index, peer_.id,
                   waiting, waiting == 1 ? "" : "s");
        links_.back()->connect(); // a failure at once comes back through link_down
        if (loop_.now() < open_after_) {
            break;
        }
    }
}

void PeerWorker::extra_down(std::size_t i, bool was_up) {
    auto& u = use_[i];
    if (u.dead) {
        return;
    }
    u.dead = true;
    defer_reap();
    if (u.closing) {
        stats_.links_closed += was_up ? 1U : 0U;
        return;
    }
    if (u.answered) { // it served; lond closed it since (its own idle timeout, a restart)
        lg().warn("Link {} to {} (opened on demand) lost: {}", u.index, peer_.id,
                  links_[i]->last_error());
        return;
    }
    ++extra_failures_;
    const double base = std::max(min_backoff, opts_.retry_min) *
                        std::pow(2.0, std::min(30.0, static_cast<double>(extra_failures_ - 1)));
    const double wait = std::max(min_backoff, std::min(opts_.retry_max, base));
    open_after_ = loop_.now() + seconds(wait);
    if ((extra_failures_ & (extra_failures_ - 1)) == 0) { // 1, 2, 4, 8, ...
        const auto up = links_ready_ - (was_up ? 1U : 0U);
        lg().warn("Link {} to {} (opened on demand) failed: {}; going on with the {} link{} "
                  "up, no new link for {:.1f} s",
                  u.index, peer_.id, links_[i]->last_error(), up, up == 1 ? "" : "s", wait);
    }
}

void PeerWorker::mark_idle(std::size_t i) {
    use_[i].idle_since = loop_.now();
    // Over the maximum (a reload lowered it): closed at once, from the timer.
    const auto when =
        live_links() > max_links() ? loop_.now() : loop_.now() + seconds(opts_.link_idle_timeout);
    if (!link_idle_timer_.armed() || when < link_idle_timer_.deadline()) {
        link_idle_timer_.arm_at(when);
    }
}

void PeerWorker::close_idle_links() {
    const auto now = loop_.now();
    const auto limit = seconds(opts_.link_idle_timeout);
    auto next = EventLoop::TimePoint::max();
    std::size_t live = live_links();
    for (std::size_t i = links_.size(); i-- > kept_;) { // the newest first
        if (use_[i].dead || !links_[i]->ready() || links_[i]->in_flight() > 0) {
            continue;
        }
        if (links_ready_ == 1) {
            break; // the one link up stays (the kept ones reconnect): link_up looks again
        }
        const bool over = live > max_links();
        if (over || use_[i].idle_since + limit <= now) {
            use_[i].closing = true;
            --live;
            lg().debug("Closing link {} to {}: {}", use_[i].index, peer_.id,
                       over ? "more links than --max-connections" : "idle");
            links_[i]->stop(over ? "more links than --max-connections"
                                 : "idle for " + std::to_string(opts_.link_idle_timeout) + " s");
            continue;
        }
        next = std::min(next, use_[i].idle_since + limit);
    }
    if (next != EventLoop::TimePoint::max()) {
        link_idle_timer_.arm_at(next);
    } else {
        link_idle_timer_.cancel();
    }
}

void PeerWorker::stop_links(std::string_view reason) {
    for (std::size_t i = 0; i < links_.size(); ++i) {
        use_[i].closing = extra(i) || use_[i].closing;
        links_[i]->stop(reason);
    }
}

void PeerWorker::defer_reap() {
    if (!reap_deferred_) {
        reap_deferred_ = true;
        loop_.defer(*this);
    }
}

// At the end of the round: no link's own code is on the stack any more.
void PeerWorker::run_deferred() {
    reap_deferred_ = false;
    for (std::size_t i = links_.size(); i-- > kept_;) {
        if (use_[i].dead && links_[i]->in_flight() == 0) {
            connection_.erase(links_[i].get());
            links_.erase(links_.begin() + static_cast<std::ptrdiff_t>(i));
            use_.erase(use_.begin() + static_cast<std::ptrdiff_t>(i));
        }
    }
}

} // namespace lonc
