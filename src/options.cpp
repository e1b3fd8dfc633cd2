#include "lonc/options.hpp"

#include <CLI/CLI.hpp>

namespace lonc {

void add_options(CLI::App& app, Options& o) {
    // An option given twice: the last one wins (wrappers can add to a command line).
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.set_config("--settings", "", "INI file with option values (the command line wins)");
    // A misspelt key in the settings file is an error, not silently ignored.
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.set_version_flag("--version", std::string("lonc ") + LONC_VERSION);

    app.add_option("-c,--config", o.config, "LON-CAPA access.conf")->capture_default_str();
    app.add_flag("-f,--foreground", o.foreground, "Do not daemonize; log to stderr too");
    app.add_option("-u,--user", o.user, "Run as this user (switched to when started as root)")
        ->capture_default_str();
    app.add_flag("-t,--check-config", o.check_config,
                 "Check the configuration, print peers, paths and problems, exit");
    app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
        ->capture_default_str();

    const auto nonneg = CLI::NonNegativeNumber;
    app.add_option("--handshake-timeout", o.handshake_timeout,
                   "Seconds for the whole init/ekey dialogue with lond")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--handshake-pause", o.handshake_pause,
                   "Seconds after the handshake before the pong request")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--request-timeout", o.request_timeout,
                   "Seconds from a request's arrival until it is answered con_lost")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--requeue-grace", o.requeue_grace,
                   "Seconds unsent requests wait for a new link after the link fails")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--retry-min", o.retry_min, "First reconnect backoff, seconds")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--retry-max", o.retry_max, "Longest reconnect backoff, seconds")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--max-reply", o.max_reply, "Longest reply line from lond, bytes")
        ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 31U))
        ->capture_default_str();
    app.add_option("--connections", o.connections, "Links to each lond")
        ->check(CLI::Range(1U, 64U))
        ->capture_default_str();
    app.add_option("--pipeline", o.pipeline, "Requests written ahead on one link")
        ->check(CLI::Range(1U, 1024U))
        ->capture_default_str();

    app.add_option("--max-line", o.max_line, "Longest request line from a client, bytes")
        ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 30U))
        ->capture_default_str();
    app.add_option("--max-queue", o.max_queue, "Requests waiting for a link, per peer")
        ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
        ->capture_default_str();
    app.add_option("--client-idle-timeout", o.client_idle_timeout,
                   "Seconds a silent client connection is kept")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();

    app.add_option("--reprobe-interval", o.reprobe_interval,
                   "Seconds between probes of unreachable peers")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--probe-timeout", o.probe_timeout, "Seconds a peer probe may take")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--max-attempts", o.max_attempts,
                   "Child deaths within 10 minutes before a peer is skipped")
        ->check(CLI::Range(1U, 1000U))
        ->capture_default_str();
    app.add_option("--mail-command", o.mail_command,
                   "Mailer for fatal start errors (reads a message on stdin); empty: none")
        ->capture_default_str();

    app.add_option("--spool-rescan", o.spool_rescan, "Seconds between safety rescans of delayed/")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--spool-bad-age", o.spool_bad_age,
                   "Seconds a malformed spool file must be unchanged before it is set aside")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--spool-min-age", o.spool_min_age,
                   "Seconds a delayed file must be unchanged before it is read or sent "
                   "(lonnet reads it back 2 s after writing)")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--spool-max-attempts", o.spool_max_attempts,
                   "Link deaths with a delayed message on the wire before it is set aside")
        ->check(CLI::Range(1U, 1000U))
        ->capture_default_str();
    app.add_option("--spool-max-line", o.spool_max_line, "Longest delayed message, bytes")
        ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 31U))
        ->capture_default_str();

    app.add_option("--metrics-interval", o.metrics_interval, "Seconds between metrics writes")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--metrics-file", o.metrics_file,
                   "Prometheus text file to write (node_exporter textfile style)");

    app.add_option("--peer", o.peer,
                   "Debugging aid: run only the child for this host id, in the foreground");
}

std::string validate(const Options& o) {
    if (o.retry_max < o.retry_min) {
        return "--retry-max must not be less than --retry-min";
    }
    return {};
}

} // namespace lonc
