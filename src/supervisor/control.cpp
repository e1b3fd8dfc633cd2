#include "lonc/supervisor/control.hpp"

#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("control");
}

constexpr std::size_t max_line = 4096;
constexpr std::size_t max_conns = 64;
constexpr auto request_wait = std::chrono::seconds(10);

} // namespace

ControlServer::ControlServer(EventLoop& loop, std::filesystem::path path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)),
      expiry_(loop, [this] { expire(); }) {}

ControlServer::~ControlServer() {
    close();
}

bool ControlServer::open(std::string& error) {
    listener_ = listen_unix(path_, 0600, 16);
    if (!listener_) {
        error = path_.string() + ": " + std::strerror(errno);
        return false;
    }
    loop_.add(listener_.get(), EPOLLIN, *this);
    return true;
}

void ControlServer::close() {
    while (!conns_.empty()) {
        drop(conns_.begin()->second);
    }
    if (listener_) {
        loop_.remove(listener_.get(), *this);
        listener_.reset();
        ::unlink(path_.c_str());
    }
    expiry_.cancel();
}

void ControlServer::on_events(std::uint32_t /*events*/) {
    for (;;) {
        UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                lg().warn("Control socket: accept failed: {}", std::strerror(errno));
            }
            return;
        }
        if (conns_.size() >= max_conns) {
            continue; // closed at once: lonctl reports it and may retry
        }
        const auto id = next_id_++;
        auto& c = conns_.try_emplace(id, *this, id, std::move(fd)).first->second;
        c.opened = loop_.now();
        loop_.add(c.fd.get(), EPOLLIN, c);
        if (!expiry_.armed()) {
            expiry_.arm_in(request_wait);
        }
    }
}

void ControlServer::conn_events(Conn& c, std::uint32_t events) {
    if ((events & EPOLLOUT) != 0) {
        flush(c);
        return;
    }
    if (c.asked) {
        // Only a hang-up is watched now; the answer is still owed.
        if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
            drop(c); // lonctl gave up waiting
        }
        return;
    }
    char buf[1024];
    const auto n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(c);
        return;
    }
    if (n < 0) {
        return;
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    const auto nl = c.in.find('\n');
    if (nl == std::string::npos) {
        if (c.in.size() > max_line) {
            lg().warn("Control socket: request longer than {} bytes; closed", max_line);
            drop(c);
        }
        return;
    }
    c.in.resize(nl);
    c.asked = true;
    loop_.modify(c.fd.get(), EPOLLRDHUP, c);
    const auto id = c.id;
    const std::string line = std::move(c.in);
    handler_(id, line); // may answer, and so drop c, at once
}

void ControlServer::answer(ConnId id, std::string text) {
    const auto it = conns_.find(id);
    if (it == conns_.end()) {
        return;
    }
    auto& c = it->second;
    c.out = std::move(text);
    c.out_off = 0;
    flush(c);
}

int ControlServer::conn_fd(ConnId id) const {
    const auto it = conns_.find(id);
    return it == conns_.end() ? -1 : it->second.fd.get();
}

ControlServer::ConnId ControlServer::adopt(UniqueFd fd) {
    const auto id = next_id_++;
    auto& c = conns_.try_emplace(id, *this, id, std::move(fd)).first->second;
    c.opened = loop_.now();
    c.asked = true;
    loop_.add(c.fd.get(), EPOLLRDHUP, c);
    return id;
}

void ControlServer::flush(Conn& c) {
    while (c.out_off < c.out.size()) {
        const auto n = ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off,
                              MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) {
            loop_.modify(c.fd.get(), EPOLLOUT, c);
            return;
        }
        if (n <= 0) {
            break; // the reader is gone
        }
        c.out_off += static_cast<std::size_t>(n);
    }
    drop(c);
}

void ControlServer::drop(Conn& c) {
    loop_.remove(c.fd.get(), c);
    conns_.erase(c.id); // destroys c
}

// Connections that never sent their line are closed; those waiting for an
// answer are the handler's to finish.
void ControlServer::expire() {
    const auto now = loop_.now();
    for (auto it = conns_.begin(); it != conns_.end();) {
        auto& c = it->second;
        ++it;
        if (!c.asked && c.opened + request_wait <= now) {
            drop(c);
        }
    }
    bool waiting = false;
    for (const auto& [id, c] : conns_) {
        waiting = waiting || !c.asked;
    }
    if (waiting) {
        expiry_.arm_in(std::chrono::seconds(1));
    }
}

} // namespace lonc
