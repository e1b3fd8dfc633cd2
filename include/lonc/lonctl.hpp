// lonctl's commands, for operators and scripts. Each prints to out/err and
// returns the process exit code:
//   0  done (send: a reply was received, whatever its text; reload: applied)
//   1  bad usage or an unreadable configuration
//   2  send: con_lost; check: a check failed; reconnect: lonc refused;
//      reload: rejected (lonc runs on unchanged)
//   3  no such host, no socket for it, or lonc is not running
#pragma once

#include "lonc/config.hpp"

#include <cstdio>
#include <string>

namespace lonc::ctl {

enum Exit : int { ok = 0, usage = 1, failed = 2, absent = 3 };

struct Context {
    const Config& config; // loaded; settings present
    std::FILE* out = stdout;
    std::FILE* err = stderr;
    double timeout = 10; // seconds to wait for lonc
};

// One request through lonc, as lonnet sends it; prints the reply.
int send(const Context& ctx, const std::string& host, const std::string& request);
// A fresh status generation from the running lonc: a table, or the JSON.
int status(const Context& ctx, bool json);
// The configuration, the running daemon, each socket, each peer's ping.
int check(const Context& ctx);
// Asks lonc to drop and re-make HOST's link now.
int reconnect(const Context& ctx, const std::string& host);
// Asks lonc to reload its configuration, waits for the outcome, prints it.
int reload(const Context& ctx);
// delayed/: list files (HOST or all), put .bad files back, delete .bad files.
int spool_list(const Context& ctx, const std::string& host);
int spool_retry(const Context& ctx, const std::string& host);
int spool_purge_bad(const Context& ctx, const std::string& host);

} // namespace lonc::ctl
