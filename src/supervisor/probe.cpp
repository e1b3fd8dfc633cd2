#include "lonc/supervisor/probe.hpp"

#include "lonc/runtime/net.hpp"

#include <cerrno>
#include <cstring>
#include <poll.h>

namespace lonc {

struct Prober::Probe final : EventLoop::Watcher {
    Probe(Prober& p, std::string peer_id, UniqueFd f, int err)
        : owner(p), id(std::move(peer_id)), fd(std::move(f)), error(err), timer(p.loop_, [this] {
              // A loop busy forking hundreds of children may reach this
              // timer before the connect's event: ask the socket itself.
              pollfd pfd{fd.get(), POLLOUT, 0};
              if (fd && ::poll(&pfd, 1, 0) == 1) {
                  on_events(0);
                  return;
              }
              owner.finish(id, false, "no answer within the probe timeout");
          }) {}
    ~Probe() {
        if (fd) {
            owner.loop_.remove(fd.get(), *this);
        }
    }
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;

    void on_events(std::uint32_t /*events*/) override {
        const int err = socket_error(fd.get());
        if (err == 0 || err == ECONNREFUSED) {
            owner.finish(id, true, err == 0 ? "connected" : "connection refused");
        } else {
            owner.finish(id, false, std::strerror(err));
        }
    }

    Prober& owner;
    std::string id;
    UniqueFd fd;
    int error; // a connect that failed at once
    Timer timer;
};

Prober::Prober(EventLoop& loop, std::uint16_t port, double timeout, Done done)
    : loop_(loop), port_(port), timeout_(timeout), done_(std::move(done)),
      reaper_(loop, [this] { finished_.clear(); }) {}

Prober::~Prober() = default;

void Prober::probe(const Peer& peer) {
    if (probes_.count(peer.id) != 0) {
        return;
    }
    UniqueFd fd = tcp_connect(peer.addr, port_, std::nullopt);
    const int err = fd ? 0 : errno;
    auto p = std::make_unique<Probe>(*this, peer.id, std::move(fd), err);
    if (p->fd) {
        loop_.add(p->fd.get(), EPOLLOUT, *p);
        p->timer.arm_in(seconds(timeout_));
    } else {
        p->timer.arm_in(EventLoop::Clock::duration::zero()); // report from the loop
    }
    probes_[peer.id] = std::move(p);
}

void Prober::finish(const std::string& id, bool reachable, const std::string& why) {
    const auto it = probes_.find(id);
    if (it == probes_.end()) {
        return;
    }
    std::string reason = why;
    if (!it->second->fd) {
        const int err = it->second->error;
        reachable = err == ECONNREFUSED;
        reason = std::strerror(err);
    }
    const std::string peer_id = id; // id may live in the probe we move away
    // finish() runs inside the probe's own callbacks: destroy it later.
    if (it->second->fd) {
        loop_.remove(it->second->fd.get(), *it->second);
        it->second->fd.reset();
    }
    it->second->timer.cancel();
    finished_.push_back(std::move(it->second));
    probes_.erase(it);
    reaper_.arm_in(EventLoop::Clock::duration::zero());
    done_(peer_id, reachable, reason);
}

void Prober::cancel(const std::string& id) {
    const auto it = probes_.find(id);
    if (it == probes_.end()) {
        return;
    }
    if (it->second->fd) {
        loop_.remove(it->second->fd.get(), *it->second);
        it->second->fd.reset();
    }
    it->second->timer.cancel();
    finished_.push_back(std::move(it->second));
    probes_.erase(it);
    reaper_.arm_in(EventLoop::Clock::duration::zero());
}

void Prober::configure(std::uint16_t port, double timeout) {
    port_ = port;
    timeout_ = timeout;
}

void Prober::cancel_all() {
    for (auto& [id, p] : probes_) {
        p->timer.cancel();
        finished_.push_back(std::move(p));
    }
    probes_.clear();
    reaper_.arm_in(EventLoop::Clock::duration::zero());
}

} // namespace lonc
