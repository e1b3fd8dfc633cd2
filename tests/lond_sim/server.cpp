#include "server.hpp"

#include "lonc/core/line_buffer.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace lond_sim {
namespace {

// Answers given after handshakes, all connections together (--exit-after).
std::atomic<std::uint64_t> answers{0};

// Enough for a connection thread; the default 8 MiB would reserve 8 GiB of
// address space for a thousand connections.
constexpr std::size_t thread_stack = std::size_t{1} << 20U;

std::string errno_text(int err) {
    return std::strerror(err);
}

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

[[noreturn]] void park_forever() {
    for (;;) {
        std::this_thread::sleep_for(std::chrono::hours(1));
    }
}

struct Connection {
    int fd = -1;
    Identity* identity = nullptr;
    std::string client_id; // empty: source ip not in hosts.tab
    const ServerOptions* options = nullptr;
};

// --silent: swallow everything, answer nothing, until the peer goes away.
void discard_until_eof(int fd) {
    std::vector<char> buf(65536);
    for (;;) {
        const auto n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            return;
        }
    }
}

// Counts one answer; false when --exit-after was already reached (another
// connection is exiting the process: this answer must not go out).
bool count_answer(const ServerOptions& options, int fd, std::string& out) {
    if (options.exit_after == 0) {
        return true;
    }
    const auto before = answers.fetch_add(1);
    if (before >= options.exit_after) {
        return false;
    }
    if (before + 1 == options.exit_after) {
        send_all(fd, out);
        std::fflush(nullptr);
        ::_exit(0);
    }
    return true;
}

void serve(const Connection& c) {
    const auto& options = *c.options;
    Session session(*c.identity, c.client_id, options.session);
    lonc::LineBuffer in(options.max_line);
    std::string out;
    for (;;) {
        auto space = in.prepare(65536);
        if (space.empty()) {
            return; // a line over the limit
        }
        const auto n = ::recv(c.fd, space.data(), space.size(), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        in.commit(static_cast<std::size_t>(n));
        auto next = Step::Next::keep;
        while (const auto line = in.next_line()) {
            if (options.service_us != 0 && session.handshake_done()) {
                std::this_thread::sleep_for(std::chrono::microseconds(options.service_us));
            }
            const auto mark = out.size();
            const auto step = session.on_line(*line, out);
            if (step.delay.count() > 0) {
                // Replies before this one are done: let them go first.
                if (!send_all(c.fd, std::string_view(out).substr(0, mark))) {
                    return;
                }
                out.erase(0, mark);
                std::this_thread::sleep_for(step.delay);
            }
            if (step.answered && !count_answer(options, c.fd, out)) {
                park_forever();
            }
            if (step.next != Step::Next::keep) {
                next = step.next;
                break;
            }
        }
        if (!out.empty() && !send_all(c.fd, out)) {
            return;
        }
        out.clear();
        if (out.capacity() > (std::size_t{1} << 20U)) {
            out.shrink_to_fit(); // after bytes:N, do not hold N per connection
        }
        if (next == Step::Next::reset) {
            const linger abort{1, 0}; // close() sends RST instead of FIN
            ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
            return;
        }
        if (next == Step::Next::close || in.overflowed()) {
            return;
        }
        if (next == Step::Next::stop_reading) {
            park_forever(); // the socket stays open and unread until we exit
        }
    }
}

void* connection_thread(void* arg) {
    const std::unique_ptr<Connection> c(static_cast<Connection*>(arg));
    if (c->options->silent) {
        discard_until_eof(c->fd);
    } else {
        serve(*c);
    }
    ::close(c->fd);
    return nullptr;
}

void start_thread(std::unique_ptr<Connection> c) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, thread_stack);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    const int err = pthread_create(&thread, &attr, connection_thread, c.get());
    pthread_attr_destroy(&attr);
    if (err != 0) {
        std::fprintf(stderr, "lond-sim: cannot start a connection thread: %s\n",
                     errno_text(err).c_str());
        ::close(c->fd);
        return;
    }
    static_cast<void>(c.release()); // the thread owns it now
}

} // namespace

Server::Server(ServerOptions options, const lonc::HostTable& hosts) : options_(std::move(options)) {
    for (const auto& peer : hosts.peers) {
        clients_.emplace_back(peer.addr.s_addr, peer.id);
    }
    // Several ids on one ip: the first in hosts.tab wins.
    std::stable_sort(clients_.begin(), clients_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    clients_.erase(std::unique(clients_.begin(), clients_.end(),
                               [](const auto& a, const auto& b) { return a.first == b.first; }),
                   clients_.end());
}

void Server::listen(const std::string& ip, const std::string& id) {
    const auto where = ip + ":" + std::to_string(options_.port);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(options_.port);
    if (::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
        throw std::runtime_error("'" + ip + "' is not an IPv4 address");
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw std::runtime_error("cannot create a socket for " + where + ": " + errno_text(errno));
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, SOMAXCONN) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::runtime_error("cannot listen on " + where + " (as " + id +
                                 "): " + errno_text(err));
    }
    auto& l = listeners_.emplace_back();
    l.fd = fd;
    l.identity.id = id;
}

void Server::accept_all(Listener& listener) {
    for (;;) {
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        const int fd =
            ::accept4(listener.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: leave the rest in the backlog a moment
                // rather than spin on a listener that stays readable.
                std::fprintf(stderr, "lond-sim: accept: %s\n", errno_text(errno).c_str());
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            return; // EAGAIN: all taken
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<Connection>();
        c->fd = fd;
        c->identity = &listener.identity;
        c->options = &options_;
        const auto it = std::lower_bound(
            clients_.begin(), clients_.end(), peer.sin_addr.s_addr,
            [](const auto& entry, std::uint32_t addr) { return entry.first < addr; });
        if (it != clients_.end() && it->first == peer.sin_addr.s_addr) {
            c->client_id = it->second;
        } else if (!options_.silent) {
            // As lond: an unknown address is refused before anything is read.
            ::send(fd, "refused\n", 8, MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            continue;
        }
        start_thread(std::move(c));
    }
}

void Server::run() {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    const int sig_fd = ::signalfd(-1, &stop, SFD_CLOEXEC);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (sig_fd < 0 || ep < 0) {
        std::fprintf(stderr, "lond-sim: signalfd/epoll: %s\n", errno_text(errno).c_str());
        ::_exit(1);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr; // the signal fd
    ::epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev);
    for (auto& l : listeners_) {
        ev.data.ptr = &l;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, l.fd, &ev);
    }
    std::vector<epoll_event> events(256);
    for (;;) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
        if (n < 0 && errno != EINTR) {
            std::fprintf(stderr, "lond-sim: epoll_wait: %s\n", errno_text(errno).c_str());
            ::_exit(1);
        }
        for (int i = 0; i < n; ++i) {
            auto* l = static_cast<Listener*>(events[static_cast<std::size_t>(i)].data.ptr);
            if (l == nullptr) {
                // SIGTERM/SIGINT: connection threads sit in blocking calls;
                // nothing needs saving (--log is written unbuffered).
                std::fflush(nullptr);
                ::_exit(0);
            }
            accept_all(*l);
        }
    }
}

} // namespace lond_sim
