// lond-sim's sockets: listeners on one or many addresses, one acceptor
// thread with epoll over all of them, and one thread per accepted
// connection doing blocking I/O (a sleep on one never delays another).
#pragma once

#include "lonc/core/config.hpp"

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "commands.hpp"

namespace lond_sim {

struct ServerOptions {
    std::uint16_t port = 0;
    bool silent = false;               // accept, read and discard, never answer
    std::uint64_t exit_after = 0;      // exit(0) after this many answers; 0: never
    std::uint32_t service_us = 0;      // sleep per request after the handshake
    std::size_t max_line = 64U << 20U; // a longer request line closes the connection
    SessionConfig session;
};

class Server {
public:
    Server(ServerOptions options, const lonc::HostTable& hosts);

    // Binds a listener on ip:port answering as id. Throws std::runtime_error
    // with a readable message when it cannot.
    void listen(const std::string& ip, const std::string& id);

    // Accepts until SIGTERM or SIGINT (then exits the process with 0).
    // SIGTERM and SIGINT must be blocked in every thread before this is
    // called (main does it first thing).
    [[noreturn]] void run();

private:
    struct Listener {
        int fd = -1;
        Identity identity;
    };

    void accept_all(Listener& listener);

    ServerOptions options_;
    std::vector<std::pair<std::uint32_t, std::string>> clients_; // source ip -> host id, sorted
    std::deque<Listener> listeners_; // stable addresses: connections point into them
};

} // namespace lond_sim
