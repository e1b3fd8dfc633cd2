// Reachability probes against a real listening socket on loopback.
#include "lonc/runtime/event_loop.hpp"
#include "lonc/supervisor/probe.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <map>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace lonc {
namespace {

// A listener on 127.0.0.1 with a backlog big enough for every probe.
struct Listener {
    Listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(fd, 1024), 0);
        EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
        port = ntohs(a.sin_port);
        addr = a.sin_addr;
    }
    ~Listener() { ::close(fd); }
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    int fd = -1;
    std::uint16_t port = 0;
    in_addr addr{};
};

// A supervisor busy forking children may get to a probe's timer before the
// connect's event, which waits behind hundreds of others (one round takes
// at most 256): a connect that completed must still count as reachable.
TEST(Prober, ACompletedConnectIsReachableEvenWhenItsTimerComesFirst) {
    Listener l;
    EventLoop loop;
    std::map<std::string, bool> results;
    Prober prober(loop, l.port, 0.001,
                  [&](const std::string& id, bool up, const std::string&) { results[id] = up; });
    const int n = 400; // more than one round's worth of events
    for (int i = 0; i < n; ++i) {
        Peer p;
        p.id = "p" + std::to_string(i);
        p.addr = l.addr;
        prober.probe(p);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // every timer is due
    for (int i = 0; i < 50 && results.size() < static_cast<std::size_t>(n); ++i) {
        loop.run_once(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(results.size(), static_cast<std::size_t>(n));
    for (const auto& [id, up] : results) {
        EXPECT_TRUE(up) << id;
    }
}

TEST(Prober, NothingListeningCountsAsUp) {
    // A refused connection means the host answered (as the original's ping).
    std::uint16_t port = 0;
    {
        Listener l;
        port = l.port;
    }
    EventLoop loop;
    std::map<std::string, bool> results;
    Prober prober(loop, port, 2.0,
                  [&](const std::string& id, bool up, const std::string&) { results[id] = up; });
    Peer p;
    p.id = "gone";
    ::inet_pton(AF_INET, "127.0.0.1", &p.addr);
    prober.probe(p);
    for (int i = 0; i < 100 && results.empty(); ++i) {
        loop.run_once(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(results.size(), 1U);
    EXPECT_TRUE(results["gone"]);
}

} // namespace
} // namespace lonc
