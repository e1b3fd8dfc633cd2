#include "lonc/runtime/ipc.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <sys/socket.h>
#include <system_error>

namespace lonc::ipc {

std::string encode_generation(std::uint64_t generation) {
    return std::to_string(generation);
}

std::optional<std::uint64_t> decode_generation(std::string_view payload) noexcept {
    std::uint64_t n = 0;
    const auto* end = payload.data() + payload.size();
    const auto [p, ec] = std::from_chars(payload.data(), end, n);
    if (payload.empty() || ec != std::errc{} || p != end) {
        return std::nullopt;
    }
    return n;
}

std::optional<Message> parse(std::string_view datagram, std::string& error) {
    if (datagram.empty()) {
        error = "empty message";
        return std::nullopt;
    }
    Message m;
    m.type = static_cast<Type>(datagram.front());
    m.payload = std::string(datagram.substr(1));
    switch (m.type) {
    case Type::status_request:
        if (!decode_generation(m.payload)) {
            error = "status request without a generation number";
            return std::nullopt;
        }
        return m;
    case Type::retry:
    case Type::reconnect:
    case Type::drain:
    case Type::handoff:
    case Type::reclaim:
        if (!m.payload.empty()) {
            error = "unexpected payload";
            return std::nullopt;
        }
        return m;
    case Type::spool_hint:
        if (m.payload.empty() || m.payload.size() > 255 ||
            m.payload.find('/') != std::string::npos) {
            error = "bad spool file name";
            return std::nullopt;
        }
        return m;
    case Type::options:
        if (m.payload.empty()) {
            error = "options without values";
            return std::nullopt;
        }
        return m;
    case Type::status_reply:
        if (std::string why; !ChildReport::decode(m.payload, why)) {
            error = "malformed status report: " + why;
            return std::nullopt;
        }
        return m;
    case Type::link_state:
        if (!parse_link_state(m.payload)) {
            error = "bad link state";
            return std::nullopt;
        }
        return m;
    }
    error = "unknown message type";
    return std::nullopt;
}

bool send(int fd, Type type, std::string_view payload) {
    if (payload.size() + 1 > max_message) {
        return false;
    }
    std::string msg;
    msg.reserve(payload.size() + 1);
    msg += static_cast<char>(type);
    msg += payload;
    const auto n = ::send(fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    return n == static_cast<ssize_t>(msg.size());
}

std::pair<UniqueFd, UniqueFd> make_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
        throw std::system_error(errno, std::generic_category(), "socketpair");
    }
    return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

Channel::Channel(EventLoop& loop, UniqueFd fd, OnMessage on_message, OnClose on_close)
    : loop_(loop), fd_(std::move(fd)), on_message_(std::move(on_message)),
      on_close_(std::move(on_close)) {
    loop_.add(fd_.get(), EPOLLIN, *this);
}

Channel::~Channel() {
    if (fd_) {
        loop_.remove(fd_.get(), *this);
    }
}

bool Channel::send(Type type, std::string_view payload) const {
    return fd_ && ipc::send(fd_.get(), type, payload);
}

bool Channel::send_or_queue(Type type, std::string payload) {
    if (!fd_ || payload.size() + 1 > max_message) {
        return false;
    }
    for (auto& m : queued_) {
        if (m.type == type) {
            m.payload = std::move(payload);
            return true;
        }
    }
    if (queued_.empty()) {
        if (ipc::send(fd_.get(), type, payload)) {
            return true;
        }
        if (errno != EAGAIN && errno != ENOBUFS) {
            return false; // the other end is gone: close() follows on EPOLLIN
        }
        loop_.modify(fd_.get(), EPOLLIN | EPOLLOUT, *this);
    }
    queued_.push_back(Message{type, std::move(payload)});
    return true;
}

void Channel::flush() {
    std::size_t sent = 0;
    while (sent < queued_.size() &&
           ipc::send(fd_.get(), queued_[sent].type, queued_[sent].payload)) {
        ++sent;
    }
    queued_.erase(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(sent));
    if (queued_.empty() || (errno != EAGAIN && errno != ENOBUFS)) {
        queued_.clear(); // sent, or the other end is gone
        loop_.modify(fd_.get(), EPOLLIN, *this);
    }
}

void Channel::close(std::string_view why) {
    if (fd_) {
        loop_.remove(fd_.get(), *this);
        fd_.reset();
    }
    if (on_close_) {
        on_close_(why); // may destroy this Channel: nothing after this
    }
}

void Channel::on_events(std::uint32_t events) {
    if ((events & EPOLLOUT) != 0 && fd_ && !queued_.empty()) {
        flush();
    }
    // One receive buffer for every channel of the process (the loop is
    // single-threaded and parse() copies what it keeps): a buffer per channel
    // cost the supervisor 64 KiB for each child, and made every fork slower.
    static std::array<char, max_message + 1> buf;
    for (int i = 0; i < 64 && fd_; ++i) {
        const auto n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
        if (n == 0) {
            close("closed by the other end");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            close(std::strerror(errno));
            return;
        }
        if (static_cast<std::size_t>(n) > max_message) {
            close("message too long");
            return;
        }
        std::string error;
        const auto msg = parse(std::string_view(buf.data(), static_cast<std::size_t>(n)), error);
        if (!msg) {
            close("bad message: " + error);
            return;
        }
        on_message_(*msg);
    }
}

} // namespace lonc::ipc
