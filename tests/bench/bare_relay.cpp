#include "bare_relay.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <unordered_map>

namespace lonc::bench {
namespace {

constexpr std::uint64_t listener_id = 0;
constexpr std::uint64_t link_id = 1;

struct Conn {
    int fd = -1;
    std::string in;
    std::string out;
    bool want_out = false; // EPOLLOUT registered
};

int die(const char* what) {
    (void)std::fprintf(stderr, "bare relay: %s: %s\n", what, std::strerror(errno));
    return 1;
}

bool write_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        const auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

bool read_line(int fd, std::string& line) {
    line.clear();
    char c = 0;
    while (::recv(fd, &c, 1, 0) == 1) {
        if (c == '\n') {
            return true;
        }
        line += c;
    }
    return false;
}

void watch(int ep, int op, int fd, std::uint32_t events, std::uint64_t id) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    ::epoll_ctl(ep, op, fd, &ev);
}

// Sends what fits; the rest waits for EPOLLOUT.
void flush(int ep, Conn& c, std::uint64_t id) {
    while (!c.out.empty()) {
        const auto n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN && !c.want_out) {
                c.want_out = true;
                watch(ep, EPOLL_CTL_MOD, c.fd, EPOLLIN | EPOLLOUT, id);
            }
            return;
        }
        c.out.erase(0, static_cast<std::size_t>(n));
    }
    if (c.want_out) {
        c.want_out = false;
        watch(ep, EPOLL_CTL_MOD, c.fd, EPOLLIN, id);
    }
}

} // namespace

int run_bare_relay(const std::string& socket_path, in_addr lond, std::uint16_t port,
                   in_addr source) {
    // The link: connect and handshake (blocking), then non-blocking.
    Conn link;
    link.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(link.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr = source;
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_addr = lond;
    dst.sin_port = htons(port);
    std::string line;
    if (::bind(link.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
        ::connect(link.fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
        return die("connect to lond");
    }
    if (!write_all(link.fd, "init\n") || !read_line(link.fd, line) ||
        !write_all(link.fd, line + "\n") || !read_line(link.fd, line) || line != "ok") {
        return die("handshake");
    }

    const int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(socket_path.c_str());
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(lfd, SOMAXCONN) != 0) {
        return die("listen");
    }
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    watch(ep, EPOLL_CTL_ADD, lfd, EPOLLIN, listener_id);
    watch(ep, EPOLL_CTL_ADD, link.fd, EPOLLIN, link_id);
    (void)std::printf("ready\n");
    (void)std::fflush(stdout);

    std::unordered_map<std::uint64_t, Conn> clients;
    std::deque<std::pair<std::uint64_t, std::string>> queue; // waiting for the link
    std::uint64_t next_id = 2;
    std::uint64_t in_flight = 0; // client id whose request is on the link; 0: none
    bool sent = false;
    char buf[65536];

    // Puts the next queued request on the link if the link is free.
    auto pump = [&] {
        while (!sent && !queue.empty()) {
            auto [id, req] = std::move(queue.front());
            queue.pop_front();
            if (clients.count(id) == 0) {
                continue; // its client left: nobody to answer
            }
            link.out += req;
            link.out += '\n';
            in_flight = id;
            sent = true;
            flush(ep, link, link_id);
        }
    };

    epoll_event events[256];
    for (;;) {
        const int n = ::epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno != EINTR) {
            return die("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const auto id = events[i].data.u64;
            const auto ev = events[i].events;
            if (id == listener_id) {
                const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0) {
                    clients[next_id].fd = fd;
                    watch(ep, EPOLL_CTL_ADD, fd, EPOLLIN, next_id++);
                }
                continue;
            }
            if (id == link_id) {
                if ((ev & EPOLLOUT) != 0) {
                    flush(ep, link, link_id);
                }
                if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) {
                    continue;
                }
                const auto r = ::recv(link.fd, buf, sizeof buf, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    (void)std::fprintf(stderr, "bare relay: lond closed the link\n");
                    return 1;
                }
                if (r < 0) {
                    continue;
                }
                link.in.append(buf, static_cast<std::size_t>(r));
                std::size_t nl = 0;
                while ((nl = link.in.find('\n')) != std::string::npos) {
                    if (auto it = clients.find(in_flight); it != clients.end()) {
                        it->second.out.append(link.in, 0, nl + 1);
                        flush(ep, it->second, in_flight);
                    }
                    link.in.erase(0, nl + 1);
                    sent = false;
                    in_flight = 0;
                }
                pump();
                continue;
            }
            const auto it = clients.find(id);
            if (it == clients.end()) {
                continue;
            }
            auto& c = it->second;
            if ((ev & EPOLLOUT) != 0) {
                flush(ep, c, id);
            }
            if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) {
                continue;
            }
            const auto r = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r < 0 && errno == EAGAIN) {
                continue;
            }
            if (r <= 0) {
                ::close(c.fd);
                clients.erase(it);
                continue;
            }
            c.in.append(buf, static_cast<std::size_t>(r));
            std::size_t nl = 0;
            while ((nl = c.in.find('\n')) != std::string::npos) {
                queue.emplace_back(id, c.in.substr(0, nl));
                c.in.erase(0, nl + 1);
            }
            pump();
        }
    }
}

BenchWorld::BenchWorld(const Binaries& bin, int hosts)
    : test::World({.hosts = hosts,
                   .id_prefix = "b",
                   .domain = "benchdom",
                   .dir_prefix = "lonc-bench",
                   .lonc = bin.lonc,
                   .lond_sim = bin.lond_sim,
                   .sanitizer_dir = bin.sanitizer_dir}),
      self_(bin.self) {}

std::filesystem::path BenchWorld::start_relay(int host) {
    auto path = dir() / ("relay-" + id(host));
    test::SpawnOptions so;
    so.capture_stdout = true;
    so.stderr_file = (dir() / ("relay-" + id(host) + ".err")).string();
    auto p = test::Process::spawn({self_, "--bare-relay", path.string(), "--lond",
                                   ip(host) + ":" + std::to_string(port()), "--source", ip(0)},
                                  so);
    if (!p.wait_for_output("ready", std::chrono::seconds(30))) {
        throw std::runtime_error("the bare relay did not start: " + test::slurp(so.stderr_file));
    }
    relays_[host] = std::move(p);
    return path;
}

pid_t BenchWorld::relay_pid(int host) const {
    const auto it = relays_.find(host);
    return it == relays_.end() ? -1 : it->second.pid();
}

} // namespace lonc::bench
