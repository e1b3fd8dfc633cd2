// One request on its way to lond and back.
//
// Ownership: a Request has one owner at a time, a RequestPtr that moves
// along its path and back:
//
//   its source (a Client's slot, the worker's pong slot, the spooler)
//     -> the worker's queue -> a Link's in-flight list
//     -> the worker (lond's reply, or the loss of it) -> its source
//
// Each source makes its Request once and gets the same one back, so a
// request costs no allocation. The one back pointer, `client`, is not an
// owner: a client that goes away while its request is out clears it, and
// the request, answered or not, is then dropped (freed) by the worker.
#pragma once

#include "lonc/runtime/event_loop.hpp"

#include <memory>
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
    Client* client = nullptr; // Kind::client: whom to answer; nullptr once it is gone
};

using RequestPtr = std::unique_ptr<Request>;

} // namespace lonc
