#include "load.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace lonc::test {

const char* to_string(Pattern p) noexcept {
    return p == Pattern::lonnet ? "lonnet" : "persistent";
}

std::uint64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000U +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

constexpr std::uint64_t ms_ns = 1000000U;
constexpr std::uint64_t tick_ns = 10 * ms_ns;
constexpr std::uint64_t retry_ns = 1 * ms_ns; // after a failure, and when idle

// One line from a blocking socket, byte by byte (lond's handshake only).
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

// A connected socket (blocking until the handshake is done); -1 if it
// cannot be had.
int connect_target(const Target& t) {
    if (!t.unix_path.empty()) {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, t.unix_path.c_str(),
                    std::min(t.unix_path.size() + 1, sizeof a.sun_path - 1));
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd);
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
            ::close(fd);
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
        ::close(fd);
        return -1;
    }
    return fd;
}

// One client: at most one connection and one request at a time.
struct Slot {
    unsigned index = 0;
    int fd = -1;
    std::size_t fd_target = 0; // the target fd is connected to
    bool served = false;       // fd has carried a reply
    bool busy = false;         // a request is out
    bool want_out = false;     // EPOLLOUT is armed
    std::uint64_t t0 = 0;
    std::uint64_t deadline = 0; // reply timeout (0: none)
    std::uint64_t wake_at = 0;  // idle until then
    std::size_t sent = 0;       // bytes of out written
    std::size_t got = 0;        // bytes of buf filled
    Request req;
    std::string out; // req.line + '\n'
    std::vector<char> buf = std::vector<char>(4096);
};

class Engine {
public:
    Engine(const std::vector<Target>& targets, const LoadLimits& limits, Workload& w)
        : targets_(targets), limits_(limits), w_(w), ep_(::epoll_create1(EPOLL_CLOEXEC)),
          slots_(limits.clients) {
        for (unsigned i = 0; i < limits.clients; ++i) {
            slots_[i].index = i;
        }
    }
    ~Engine() {
        for (auto& s : slots_) {
            drop(s);
        }
        if (ep_ >= 0) {
            ::close(ep_);
        }
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    void run();

private:
    void begin(Slot& s, std::uint64_t now);
    void flush(Slot& s);
    void on_event(Slot& s, std::uint32_t events);
    void finish(Slot& s, const Outcome& o, bool keep);
    void drop(Slot& s);
    void watch(Slot& s, bool out);
    void sleep_until(Slot& s, std::uint64_t t);

    const std::vector<Target>& targets_;
    const LoadLimits& limits_;
    Workload& w_;
    int ep_;
    std::vector<Slot> slots_;
    unsigned connect_attempts_ = 0, connect_failures_ = 0;
    unsigned sleeping_ = 0; // slots with a wake_at
};

void Engine::sleep_until(Slot& s, std::uint64_t t) {
    sleeping_ += s.wake_at == 0 ? 1 : 0;
    s.wake_at = t;
}

void Engine::drop(Slot& s) {
    if (s.fd >= 0) {
        ::close(s.fd); // also leaves the epoll set
        s.fd = -1;
    }
    s.want_out = false;
    s.served = false;
}

void Engine::watch(Slot& s, bool out) {
    epoll_event ev{};
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0U);
    ev.data.ptr = &s;
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, s.fd, &ev);
    s.want_out = out;
}

// Asks the workload for the slot's next request and starts it.
void Engine::begin(Slot& s, std::uint64_t now) {
    if (s.wake_at != 0) {
        s.wake_at = 0;
        --sleeping_;
    }
    if (!w_.next(s.index, s.req)) {
        drop(s); // an idle client holds no connection
        sleep_until(s, now + retry_ns);
        return;
    }
    const bool reuse =
        s.fd >= 0 && s.req.pattern == Pattern::persistent && s.fd_target == s.req.target;
    if (!reuse) {
        drop(s);
        s.t0 = now_ns(); // lonnet's request starts with its connect
        ++connect_attempts_;
        s.fd = connect_target(targets_.at(s.req.target));
        if (s.fd < 0) {
            ++connect_failures_;
            sleep_until(s, now_ns() + retry_ns);
            w_.done(s.index, s.req, Outcome{Event::no_socket, {}, false, 0});
            return;
        }
        s.fd_target = s.req.target;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &s;
        ::epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &ev);
    } else {
        s.t0 = now_ns();
    }
    s.busy = true;
    s.deadline = limits_.reply_timeout.count() > 0
                     ? s.t0 + static_cast<std::uint64_t>(limits_.reply_timeout.count()) * ms_ns
                     : 0;
    s.out.assign(s.req.line);
    s.out += '\n';
    s.sent = 0;
    s.got = 0;
    flush(s);
}

void Engine::flush(Slot& s) {
    while (s.sent < s.out.size()) {
        const auto n =
            ::send(s.fd, s.out.data() + s.sent, s.out.size() - s.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) {
            if (!s.want_out) {
                watch(s, true);
            }
            return;
        }
        if (n < 0) {
            finish(s, Outcome{s.served ? Event::closed_served : Event::closed, {}, false, 0},
                   false);
            return;
        }
        s.sent += static_cast<std::size_t>(n);
    }
    if (s.want_out) {
        watch(s, false);
    }
}

void Engine::on_event(Slot& s, std::uint32_t events) {
    if ((events & EPOLLOUT) != 0 && s.sent < s.out.size()) {
        flush(s);
        if (!s.busy) {
            return;
        }
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) {
        return;
    }
    if (s.got == s.buf.size()) {
        s.buf.resize(s.buf.size() * 2); // a long reply
    }
    const auto n = ::recv(s.fd, s.buf.data() + s.got, s.buf.size() - s.got, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
        return;
    }
    if (n <= 0) { // EOF or reset before the reply was complete
        finish(s, Outcome{s.served ? Event::closed_served : Event::closed, {}, false, 0}, false);
        return;
    }
    const auto from = s.got;
    s.got += static_cast<std::size_t>(n);
    const void* nl = std::memchr(s.buf.data() + from, '\n', s.got - from);
    if (nl == nullptr) {
        return;
    }
    const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - s.buf.data());
    const auto latency = (now_ns() - s.t0) / 1000U;
    s.served = true;
    finish(s, Outcome{Event::reply, std::string_view(s.buf.data(), len), s.got != len + 1, latency},
           s.req.pattern == Pattern::persistent && !s.req.close_after);
}

// Ends the slot's request: tells the workload, then starts the next one
// (at once after a reply, a little later after a failure).
void Engine::finish(Slot& s, const Outcome& o, bool keep) {
    s.busy = false;
    w_.done(s.index, s.req, o);
    if (!keep) {
        drop(s);
    }
    if (o.event == Event::reply) {
        begin(s, now_ns());
    } else {
        sleep_until(s, now_ns() + retry_ns);
    }
}

void Engine::run() {
    if (ep_ < 0) {
        throw std::runtime_error("epoll_create1 failed");
    }
    const auto start = now_ns();
    const auto stop_at = limits_.duration.count() > 0
                             ? start + static_cast<std::uint64_t>(limits_.duration.count()) * ms_ns
                             : UINT64_MAX;
    for (auto& s : slots_) {
        begin(s, start);
    }
    if (limits_.require_target && connect_attempts_ > 0 && connect_failures_ == connect_attempts_) {
        throw std::runtime_error("cannot connect to the target: " +
                                 std::string(std::strerror(errno)));
    }
    std::vector<epoll_event> events(512);
    auto next_tick = start + tick_ns;
    for (;;) {
        auto t = now_ns();
        if (t >= stop_at || w_.finished() ||
            (limits_.stop != nullptr && limits_.stop->load(std::memory_order_relaxed))) {
            break;
        }
        if (t >= next_tick) {
            w_.tick();
            next_tick = t + tick_ns;
        }
        // Wake for the next tick, idle slot or reply deadline.
        const bool scan = sleeping_ > 0 || limits_.reply_timeout.count() > 0;
        std::uint64_t wake = std::min(next_tick, stop_at);
        for (const auto& s : slots_) {
            if (!scan) {
                break;
            }
            if (s.wake_at != 0) {
                wake = std::min(wake, s.wake_at);
            }
            if (s.busy && s.deadline != 0) {
                wake = std::min(wake, s.deadline);
            }
        }
        const int timeout = wake > t ? static_cast<int>((wake - t + ms_ns - 1) / ms_ns) : 0;
        const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
        for (int i = 0; i < n; ++i) {
            const auto& ev = events[static_cast<std::size_t>(i)];
            auto* s = static_cast<Slot*>(ev.data.ptr);
            if (s->busy) {
                on_event(*s, ev.events);
            }
        }
        if (!scan && sleeping_ == 0) {
            continue;
        }
        t = now_ns();
        for (auto& s : slots_) {
            if (s.busy && s.deadline != 0 && s.deadline <= t) {
                finish(s, Outcome{Event::timeout, {}, false, 0}, false);
            } else if (!s.busy && s.wake_at != 0 && s.wake_at <= t) {
                begin(s, t);
            }
        }
    }
}

} // namespace

void run_clients(const std::vector<Target>& targets, const LoadLimits& limits, Workload& w) {
    Engine e(targets, limits, w);
    e.run();
}

} // namespace lonc::test
