#include "load.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace lonc::bench {

using test::sample;
using test::self_cpu_us;

const char* to_string(Pattern p) noexcept {
    return p == Pattern::lonnet ? "lonnet" : "persistent";
}

namespace {

std::uint64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000U +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// One line from a blocking socket, byte by byte (handshake only).
bool read_line(int fd, std::string& line) {
    line.clear();
    pollfd p{fd, POLLIN, 0};
    for (;;) {
        if (::poll(&p, 1, 10000) != 1) {
            return false;
        }
        char c = 0;
        if (::recv(fd, &c, 1, 0) != 1) {
            return false;
        }
        if (c == '\n') {
            return true;
        }
        line += c;
    }
}

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// A connected, blocking socket; -1 (errno set) when it cannot be had.
int connect_target(const Target& t) {
    if (!t.unix_path.empty()) {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, t.unix_path.c_str(),
                    std::min(t.unix_path.size() + 1, sizeof a.sun_path - 1));
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
            const int e = errno;
            ::close(fd);
            errno = e;
            return -1;
        }
        return fd;
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (t.source) {
        sockaddr_in s{};
        s.sin_family = AF_INET;
        s.sin_addr = *t.source;
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&s), sizeof s) != 0) {
            const int e = errno;
            ::close(fd);
            errno = e;
            return -1;
        }
    }
    sockaddr_in d{};
    d.sin_family = AF_INET;
    d.sin_addr = t.tcp_addr;
    d.sin_port = htons(t.tcp_port);
    std::string line;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&d), sizeof d) != 0 ||
        !send_all(fd, "init\n") || !read_line(fd, line) || !send_all(fd, line + "\n") ||
        !read_line(fd, line) || line != "ok") {
        const int e = errno != 0 ? errno : EPROTO;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

struct Slot {
    int fd = -1;
    unsigned index = 0;
    std::uint64_t seq = 0;
    std::uint64_t t0 = 0;
    std::uint64_t retry_at = 0; // 0: no retry pending
    std::size_t got = 0;
    std::size_t sent = 0;
    std::size_t req_len = 0;
    std::size_t token_len = 0;
    unsigned done = 0;
    bool want_out = false;
    std::vector<char> req;
    std::vector<char> buf;
};

class Runner {
public:
    explicit Runner(const LoadSpec& spec) : spec_(spec), ep_(::epoll_create1(EPOLL_CLOEXEC)) {
        const auto at = spec.request.find("{token}");
        check_ = at != std::string::npos;
        prefix_ = spec.request.substr(0, check_ ? at : std::string::npos);
        suffix_ = check_ ? spec.request.substr(at + 7) : std::string();
        const std::size_t reply_cap = std::max<std::size_t>(4096, spec.reply_size + 64);
        slots_.resize(spec.clients);
        for (unsigned i = 0; i < spec.clients; ++i) {
            auto& s = slots_[i];
            s.index = i;
            s.req.resize(prefix_.size() + suffix_.size() + 48);
            s.buf.resize(reply_cap);
        }
        latencies_.reserve(std::size_t{1} << 20U);
    }
    ~Runner() {
        for (auto& s : slots_) {
            close_slot(s);
        }
        ::close(ep_);
    }
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    LoadResult run();

private:
    void open_slot(Slot& s);
    void close_slot(Slot& s);
    void start_request(Slot& s);
    void flush(Slot& s);
    void on_event(Slot& s, std::uint32_t events);
    void finish(Slot& s, std::string_view reply);
    void fail(Slot& s);
    void sample_begin();
    void sample_end();
    [[nodiscard]] bool counting() const noexcept { return begun_ && !ended_; }

    const LoadSpec& spec_;
    int ep_;
    bool check_ = false;
    std::string prefix_, suffix_;
    std::vector<Slot> slots_;
    std::vector<std::uint32_t> latencies_;
    LoadResult r_;
    bool begun_ = false, ended_ = false;
    std::uint64_t t_begin_ = 0, t_end_ = 0;
    std::uint64_t cpu_begin_ = 0;
    unsigned retries_ = 0;
    unsigned finished_clients_ = 0;
};

void Runner::open_slot(Slot& s) {
    const auto t = now_ns(); // lonnet's request starts with its connect
    s.fd = connect_target(spec_.target);
    if (s.fd < 0) {
        ++r_.connect_errors;
        if (counting()) {
            ++r_.errors;
        }
        s.retry_at = now_ns() + 1000000U;
        ++retries_;
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &s;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &ev);
    s.t0 = t;
    start_request(s);
}

void Runner::close_slot(Slot& s) {
    if (s.fd >= 0) {
        ::close(s.fd); // also leaves the epoll set
        s.fd = -1;
    }
    s.want_out = false;
}

void Runner::start_request(Slot& s) {
    char* p = s.req.data();
    std::memcpy(p, prefix_.data(), prefix_.size());
    p += prefix_.size();
    char* const token = p;
    if (check_) {
        *p++ = 'c';
        p = std::to_chars(p, p + 12, s.index).ptr;
        *p++ = 'n';
        p = std::to_chars(p, p + 20, s.seq++).ptr;
    }
    s.token_len = static_cast<std::size_t>(p - token);
    std::memcpy(p, suffix_.data(), suffix_.size());
    p += suffix_.size();
    *p++ = '\n';
    s.req_len = static_cast<std::size_t>(p - s.req.data());
    s.sent = 0;
    s.got = 0;
    if (spec_.pattern == Pattern::persistent) {
        s.t0 = now_ns();
    }
    flush(s);
}

void Runner::flush(Slot& s) {
    while (s.sent < s.req_len) {
        const auto n =
            ::send(s.fd, s.req.data() + s.sent, s.req_len - s.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN) {
                if (!s.want_out) {
                    s.want_out = true;
                    epoll_event ev{};
                    ev.events = EPOLLIN | EPOLLOUT;
                    ev.data.ptr = &s;
                    ::epoll_ctl(ep_, EPOLL_CTL_MOD, s.fd, &ev);
                }
                return;
            }
            fail(s);
            return;
        }
        s.sent += static_cast<std::size_t>(n);
    }
    if (s.want_out) {
        s.want_out = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &s;
        ::epoll_ctl(ep_, EPOLL_CTL_MOD, s.fd, &ev);
    }
}

void Runner::fail(Slot& s) {
    if (counting()) {
        ++r_.errors;
    }
    close_slot(s);
    s.retry_at = now_ns() + 1000000U;
    ++retries_;
}

void Runner::on_event(Slot& s, std::uint32_t events) {
    if ((events & EPOLLOUT) != 0 && s.sent < s.req_len) {
        flush(s);
        if (s.fd < 0) {
            return;
        }
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) {
        return;
    }
    if (s.got == s.buf.size()) {
        s.buf.resize(s.buf.size() * 2); // a reply longer than expected
    }
    const auto n = ::recv(s.fd, s.buf.data() + s.got, s.buf.size() - s.got, MSG_DONTWAIT);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        fail(s); // EOF or reset before the reply was complete
        return;
    }
    const auto from = s.got;
    s.got += static_cast<std::size_t>(n);
    const void* nl = std::memchr(s.buf.data() + from, '\n', s.got - from);
    if (nl == nullptr) {
        return;
    }
    const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - s.buf.data());
    finish(s, std::string_view(s.buf.data(), len));
}

void Runner::finish(Slot& s, std::string_view reply) {
    const auto t = now_ns();
    const std::string_view token(s.req.data() + prefix_.size(), s.token_len);
    bool ok = true;
    if (reply == "con_lost" || reply.substr(0, 6) == "error:" || reply.empty()) {
        ok = false;
        if (counting()) {
            ++r_.errors;
        }
    } else if (check_ &&
               (reply.substr(0, token.size()) != token ||
                reply.size() != (spec_.reply_size == 0 ? token.size() : spec_.reply_size) ||
                s.got != reply.size() + 1)) {
        ok = false;
        ++r_.crossed; // counted whenever it happens: it must never happen
    }
    if (!ok && r_.first_bad.empty()) {
        r_.first_bad = std::string(reply.substr(0, 80));
    }
    ++r_.total;
    if (ok && counting()) {
        ++r_.requests;
        latencies_.push_back(static_cast<std::uint32_t>((t - s.t0) / 1000U));
    }
    if (ok && ++s.done == spec_.requests_per_client && spec_.requests_per_client > 0) {
        ++finished_clients_;
        close_slot(s);
        return;
    }
    if (spec_.pattern == Pattern::lonnet) {
        close_slot(s);
        open_slot(s);
    } else {
        start_request(s);
    }
}

void Runner::sample_begin() {
    begun_ = true;
    r_.server_before = sample(spec_.server);
    r_.sim_before = sample(spec_.sim);
    cpu_begin_ = self_cpu_us();
    t_begin_ = now_ns();
}

void Runner::sample_end() {
    t_end_ = now_ns();
    r_.client_cpu_us = self_cpu_us() - cpu_begin_;
    r_.server_after = sample(spec_.server);
    r_.sim_after = sample(spec_.sim);
    ended_ = true;
}

LoadResult Runner::run() {
    if (ep_ < 0) {
        throw std::runtime_error("epoll_create1 failed");
    }
    const bool crowd = spec_.requests_per_client > 0;
    const auto start = now_ns();
    const auto warm_end = start + static_cast<std::uint64_t>(spec_.warmup * 1e9);
    const auto stop_at =
        warm_end + static_cast<std::uint64_t>((crowd ? spec_.deadline : spec_.seconds) * 1e9);
    if (crowd || spec_.warmup <= 0) {
        sample_begin();
    }
    for (auto& s : slots_) {
        open_slot(s);
    }
    if (r_.connect_errors == spec_.clients && !crowd) {
        throw std::runtime_error("cannot connect to the target: " +
                                 std::string(std::strerror(errno)));
    }
    std::vector<epoll_event> events(512);
    for (;;) {
        auto t = now_ns();
        if (!begun_ && t >= warm_end) {
            sample_begin();
        }
        if (t >= stop_at || (crowd && finished_clients_ == spec_.clients)) {
            break;
        }
        std::uint64_t next = begun_ ? stop_at : warm_end;
        if (retries_ > 0) {
            next = std::min(next, t + 1000000U);
        }
        const int timeout = static_cast<int>((next - t + 999999U) / 1000000U);
        const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
        for (int i = 0; i < n; ++i) {
            const auto& ev = events[static_cast<std::size_t>(i)];
            auto* s = static_cast<Slot*>(ev.data.ptr);
            if (s->fd >= 0) {
                on_event(*s, ev.events);
            }
        }
        if (retries_ > 0) {
            t = now_ns();
            for (auto& s : slots_) {
                if (s.retry_at != 0 && s.retry_at <= t) {
                    s.retry_at = 0;
                    --retries_;
                    open_slot(s);
                }
            }
        }
    }
    sample_end();
    for (auto& s : slots_) {
        close_slot(s);
        if (s.done >= spec_.requests_per_client && crowd) {
            ++r_.served_clients;
        }
    }
    r_.seconds = static_cast<double>(t_end_ - t_begin_) / 1e9;
    r_.rps = r_.seconds > 0 ? static_cast<double>(r_.requests) / r_.seconds : 0;
    if (!latencies_.empty()) {
        auto pct = [&](double q) {
            const auto k = static_cast<std::size_t>(
                std::min<double>(static_cast<double>(latencies_.size() - 1),
                                 std::ceil(q * static_cast<double>(latencies_.size())) - 1));
            std::nth_element(latencies_.begin(), latencies_.begin() + static_cast<long>(k),
                             latencies_.end());
            return static_cast<double>(latencies_[k]);
        };
        r_.p50_us = pct(0.50);
        r_.p99_us = pct(0.99);
        r_.max_us = static_cast<double>(*std::max_element(latencies_.begin(), latencies_.end()));
    }
    return r_;
}

} // namespace

LoadResult run_load(const LoadSpec& spec) {
    Runner r(spec);
    return r.run();
}

} // namespace lonc::bench
