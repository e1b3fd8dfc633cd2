// lonctl's commands, for operators and scripts. Each prints to out/err and
// returns the process exit code, one table for every command (lonctl(1),
// EXIT STATUS):
//   0  done (send: a reply was received, whatever its text; reload: applied;
//      upgrade: every peer handed over)
//   1  bad usage (command line, a request of more than one line)
//   2  reload (or upgrade) rejected: lonc runs on unchanged
//   3  lonc is not running
//   4  permission denied (a socket, the spool, a configuration file)
//   5  no such host in hosts.tab
//   6  peer down: send got con_lost or found no socket while lonc runs;
//      check: a peer failed
//   7  the configuration (access.conf, hosts.tab) is unreadable or unusable
//   8  another failure, named in the message (no answer in time, lonc
//      refused, no spool directory, a spool file could not be moved;
//      upgrade: some peers kept their old child)
// Failures are one line on err naming the cause (errno text where there is
// one); with json, out also gets {"error": {"code", "name", "message"}}.
#pragma once

#include "lonc/core/config.hpp"

#include <cstdio>
#include <string>

namespace lonc::ctl {

enum Exit : int {
    ok = 0,
    usage = 1,
    rejected = 2,
    not_running = 3,
    permission = 4,
    no_such_host = 5,
    peer_down = 6,
    bad_config = 7,
    failed = 8
};

struct Context {
    const Config& config; // loaded; settings present (hosts.tab may not be)
    std::FILE* out = stdout;
    std::FILE* err = stderr;
    double timeout = 10; // seconds to wait for lonc
    bool json = false;   // data (and failures) as JSON on out
};

// Prints "lonctl: message" on err and, with json, the error object on out;
// returns code. Uses only out, err and json of ctx.
int fail(const Context& ctx, int code, const std::string& message);

// The exit code for a configuration that could not be used: permission when
// a file was refused (errno EACCES or EPERM), else bad_config.
int config_failure(int error);

// One request through lonc, as lonnet sends it; prints the reply.
int send(const Context& ctx, const std::string& host, const std::string& request);
// A fresh status generation from the running lonc: a table, or the JSON.
int status(const Context& ctx);
// The configuration, the running daemon, each socket, each peer's ping.
int check(const Context& ctx);
// Asks lonc to drop and re-make HOST's link now.
int reconnect(const Context& ctx, const std::string& host);
// Asks lonc to reload its configuration, waits for the outcome, prints it.
int reload(const Context& ctx);
// Asks lonc to check and execute its binary again (a new version at the
// same path) and replace every child, waits for the outcome, prints it:
// ok when every peer was handed over, rejected when nothing changed (the
// new binary failed its check), failed when some peers kept their old
// child.
int upgrade(const Context& ctx);
// delayed/: list files (HOST or all), put .bad files back, delete .bad files.
int spool_list(const Context& ctx, const std::string& host);
int spool_retry(const Context& ctx, const std::string& host);
int spool_purge_bad(const Context& ctx, const std::string& host);

} // namespace lonc::ctl
