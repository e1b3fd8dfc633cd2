// One request on its way to lond and back.
#pragma once

#include "lonc/event_loop.hpp"

#include <string>

namespace lonc {

struct Client;

struct Request {
    enum class Kind : unsigned char {
        client, // a line from a client connection; the reply goes back to it
        pong,   // the post-handshake reverse ping; the reply is only logged
        spool,  // a delayed message from lonSockDir/delayed/
    };
    Kind kind = Kind::client;
    std::string line; // as received, without '\n' ("encrypt:..." still in clear)
    EventLoop::TimePoint arrived{};
    EventLoop::TimePoint deadline{};
    Client* client = nullptr; // for Kind::client
};

} // namespace lonc
