// The cost floor of relaying on this machine: the simplest correct
// single-threaded epoll relay. UNIX socket in, one TCP link out to lond
// (after the init/challenge handshake), one request on the link at a time,
// replies back to their clients in order. No encryption, no logging, no
// timeouts, no limits: lonc is compared against it, so it must stay this
// simple (and correct: every reply goes to the client that asked).
#pragma once

#include <cstdint>
#include <netinet/in.h>
#include <string>

namespace lonc::bench {

// Serves until killed; prints "ready" on stdout once the socket listens.
// Returns non-zero (with a message on stderr) if it cannot start or the
// link breaks.
int run_bare_relay(const std::string& socket_path, in_addr lond, std::uint16_t port,
                   in_addr source);

} // namespace lonc::bench
