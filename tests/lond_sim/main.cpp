// lond-sim: a protocol-faithful fake lond for tests, the demo and benchmarks.
//
// Usage:
//   lond-sim --hosts HOSTS_TAB --port P (--bind IP --id ID | --serve-all)
//            [--buildkey STR] [--service-us N] [--log FILE [--log-times]]
//            [--refuse-handshake] [--drop-requests] [--silent] [--exit-after N]
//
// Clients are identified by source ip through HOSTS_TAB (unknown: "refused"
// and close). After the init/challenge/ok handshake it answers ping, pong,
// ekey, load, put, get, eget, auth and enc: requests as lond does, plus
// fault commands for tests:
//   echo:TOKEN           -> TOKEN
//   sleep:MS[:TOKEN]     -> waits MS ms, then TOKEN (default "ok")
//   close                -> closes the connection without a reply
//   bytes:N              -> N bytes of 0-9a-zA-Z repeated (N <= 256 MiB)
//   half:N               -> the first N of those bytes, no newline, then close
//   garbage              -> 16-256 random bytes, anything but '\n'
//   badenc, badenc2      -> "enc:20:zz", "enc:5:" + 16 non-hex characters
//   stopread             -> "ok", then never reads or answers again
// --log FILE gets "<client_id>\t<raw line>\t<decrypted or raw line>" per
// received line (--log-times: first "<CLOCK_MONOTONIC µs>\t"). "ready" on stdout once every
// listener is bound. See tests/lond_sim/README.md.

#include "lonc/core/config.hpp"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <memory>
#include <set>
#include <sys/resource.h>
#include <unistd.h>

#include "commands.hpp"
#include "server.hpp"

namespace {

void raise_fd_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

int fail(const std::string& message) {
    std::fprintf(stderr, "lond-sim: %s\n", message.c_str());
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    // Before any thread exists: SIGTERM/SIGINT go to the acceptor's
    // signalfd, and a vanished peer is an error code, not a signal.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"lond-sim: a protocol-faithful fake lond for tests and benchmarks"};
    std::string hosts_path;
    std::uint16_t port = 0;
    std::string bind_ip;
    std::string id;
    bool serve_all = false;
    std::string buildkey;
    std::uint32_t service_us = 0;
    std::string log_path;
    bool log_times = false;
    bool refuse_handshake = false;
    bool silent = false;
    bool drop_requests = false;
    std::uint64_t exit_after = 0;

    app.add_option("--hosts", hosts_path, "hosts.tab: maps client source ips to host ids")
        ->required();
    app.add_option("--port", port, "TCP port to listen on")
        ->required()
        ->check(CLI::Range(1, 65535));
    auto* bind_opt = app.add_option("--bind", bind_ip, "listen on this IPv4 address");
    auto* id_opt = app.add_option("--id", id, "host id to answer as (with --bind)");
    auto* all_opt = app.add_flag("--serve-all", serve_all,
                                 "listen on every hosts.tab ip, each as that entry's id");
    bind_opt->needs(id_opt);
    id_opt->needs(bind_opt);
    all_opt->excludes(bind_opt)->excludes(id_opt);
    auto* key_opt =
        app.add_option("--buildkey", buildkey, "answer ekey with this (default: random)");
    app.add_option("--service-us", service_us, "sleep this many microseconds per request");
    auto* log_opt =
        app.add_option("--log", log_path, "append every received request line to this file");
    app.add_flag("--log-times", log_times,
                 "start each --log line with CLOCK_MONOTONIC microseconds and a tab")
        ->needs(log_opt);
    app.add_flag("--refuse-handshake", refuse_handshake,
                 "answer 'refused' to the challenge echo and close");
    app.add_flag("--drop-requests", drop_requests,
                 "complete handshakes, then close on every request but ekey");
    app.add_flag("--silent", silent, "accept connections but never answer");
    app.add_option("--exit-after", exit_after, "exit 0 after this many answered requests");
    CLI11_PARSE(app, argc, argv);

    if (!serve_all && bind_ip.empty()) {
        return fail("give either --bind IP --id ID, or --serve-all");
    }
    if (!serve_all && !lonc::valid_host_id(id)) {
        return fail("'" + id + "' is not a valid host id ([A-Za-z0-9._-]+)");
    }
    const auto text = lonc::read_file(hosts_path);
    if (!text) {
        return fail("cannot read " + hosts_path + ": " + std::strerror(errno));
    }
    const auto hosts = lonc::parse_hosts_tab(*text, hosts_path);
    for (const auto& p : hosts.problems) {
        std::fprintf(stderr, "lond-sim: warning: %s\n", p.to_string().c_str());
    }

    std::unique_ptr<lond_sim::RequestLog> log;
    if (!log_path.empty()) {
        const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            return fail("cannot open " + log_path + ": " + std::strerror(errno));
        }
        log = std::make_unique<lond_sim::RequestLog>(fd, log_times);
    }

    raise_fd_limit();
    lond_sim::ServerOptions options;
    options.port = port;
    options.silent = silent;
    options.exit_after = exit_after;
    options.service_us = service_us;
    if (key_opt->count() > 0) {
        options.session.buildkey = buildkey;
    }
    options.session.refuse_handshake = refuse_handshake;
    options.session.drop_requests = drop_requests;
    options.session.log = log.get();

    lond_sim::Server server(std::move(options), hosts);
    try {
        if (serve_all) {
            if (hosts.peers.empty()) {
                return fail(hosts_path + " has no entries to serve");
            }
            std::set<std::string> bound;
            for (const auto& peer : hosts.peers) {
                if (!bound.insert(peer.ip).second) {
                    // One listener per address; the first id there answers.
                    std::fprintf(stderr, "lond-sim: warning: %s shares %s with an earlier entry\n",
                                 peer.id.c_str(), peer.ip.c_str());
                    continue;
                }
                server.listen(peer.ip, peer.id);
            }
        } else {
            server.listen(bind_ip, id);
        }
    } catch (const std::exception& e) {
        return fail(e.what());
    }
    std::fputs("ready\n", stdout);
    std::fflush(stdout);
    server.run();
}
