#include "lonc/core/options.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <sstream>

namespace lonc {

namespace {

// CLI11's PositiveNumber and NonNegativeNumber print their range as
// "0.000000 to 1797693...": 300 digits. These say it in words.
CLI::Validator number_validator(bool zero_ok) {
    return {[zero_ok](std::string& text) -> std::string {
                double v = 0;
                if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v)) {
                    return "'" + text + "' is not a number";
                }
                if (zero_ok ? v < 0 : v <= 0) {
                    return (zero_ok ? "must be 0 or more, not " : "must be more than 0, not ") +
                           text;
                }
                return {};
            },
            zero_ok ? "NUMBER >= 0" : "NUMBER > 0", zero_ok ? "NonNegative" : "Positive"};
}

} // namespace

void add_options(CLI::App& app, Options& o) {
    // An option given twice: the last one wins (wrappers can add to a command line).
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.set_config("--settings", default_settings_file,
                   "INI file with option values (the command line wins); read by default when "
                   "it exists");
    // A misspelt key in the settings file is an error, not silently ignored.
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.set_version_flag("--version", std::string("lonc ") + LONC_VERSION);

    app.add_option("-c,--config", o.config, "LON-CAPA access.conf")->capture_default_str();
    app.add_flag("-f,--foreground", o.foreground, "Do not daemonize; log to stderr too");
    app.add_option("-u,--user", o.user, "Run as this user (switched to when started as root)")
        ->capture_default_str();
    app.add_flag("-t,--check-config", o.check_config,
                 "Check the configuration, print peers, paths and problems, exit");
    app.add_flag("-T,--print-settings", o.print_settings,
                 "Print every setting in effect and where it came from (default, settings "
                 "file, command line), exit");
    app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
        ->capture_default_str();

    const auto nonneg = number_validator(true);
    const auto positive = number_validator(false);
    app.add_option("--handshake-timeout", o.handshake_timeout,
                   "Seconds for the whole init/ekey dialogue with lond")
        ->check(positive)
        ->capture_default_str();
    app.add_option("--handshake-pause", o.handshake_pause,
                   "Seconds after the handshake before the pong request")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--request-timeout", o.request_timeout,
                   "Seconds from a request's arrival until it is answered con_lost")
        ->check(positive)
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
        ->check(positive)
        ->capture_default_str();

    app.add_option("--reprobe-interval", o.reprobe_interval,
                   "Seconds between probes of unreachable peers")
        ->check(positive)
        ->capture_default_str();
    app.add_option("--probe-timeout", o.probe_timeout, "Seconds a peer probe may take")
        ->check(positive)
        ->capture_default_str();
    app.add_option("--max-attempts", o.max_attempts,
                   "Child deaths within 10 minutes before a peer is skipped")
        ->check(CLI::Range(1U, 1000U))
        ->capture_default_str();
    app.add_option("--mail-command", o.mail_command,
                   "Mailer for fatal start errors (reads a message on stdin); empty: none")
        ->capture_default_str();

    app.add_option("--spool-rescan", o.spool_rescan, "Seconds between safety rescans of delayed/")
        ->check(positive)
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
    app.add_option("--spool-bad-hold", o.spool_bad_hold,
                   "Seconds a set-aside (.bad) delayed message waits before it is tried again")
        ->check(nonneg)
        ->capture_default_str();
    app.add_option("--spool-max-line", o.spool_max_line, "Longest delayed message, bytes")
        ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 31U))
        ->capture_default_str();

    app.add_option("--metrics-interval", o.metrics_interval, "Seconds between metrics writes")
        ->check(positive)
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

namespace lonc {

std::vector<OptionValue> option_values(const Options& o) {
    auto text = [](const auto& v) { return fmt::format("{}", v); };
    using L = Live;
    return {
        {"config", o.config.string(), L::parent},
        {"foreground", o.foreground ? "true" : "false", L::restart},
        {"user", o.user, L::restart},
        {"log-level", o.log_level, L::children},
        {"handshake-timeout", text(o.handshake_timeout), L::children},
        {"handshake-pause", text(o.handshake_pause), L::children},
        {"request-timeout", text(o.request_timeout), L::children},
        {"requeue-grace", text(o.requeue_grace), L::children},
        {"retry-min", text(o.retry_min), L::children},
        {"retry-max", text(o.retry_max), L::children},
        {"max-reply", text(o.max_reply), L::children},
        // More or fewer links means new links: not a live change.
        {"connections", text(o.connections), L::restart},
        {"pipeline", text(o.pipeline), L::children},
        {"max-line", text(o.max_line), L::children},
        {"max-queue", text(o.max_queue), L::children},
        {"client-idle-timeout", text(o.client_idle_timeout), L::children},
        {"reprobe-interval", text(o.reprobe_interval), L::parent},
        {"probe-timeout", text(o.probe_timeout), L::parent},
        {"max-attempts", text(o.max_attempts), L::parent},
        {"mail-command", o.mail_command, L::parent},
        {"spool-rescan", text(o.spool_rescan), L::children},
        {"spool-bad-age", text(o.spool_bad_age), L::children},
        {"spool-min-age", text(o.spool_min_age), L::children},
        {"spool-max-attempts", text(o.spool_max_attempts), L::children},
        {"spool-bad-hold", text(o.spool_bad_hold), L::children},
        {"spool-max-line", text(o.spool_max_line), L::children},
        {"metrics-interval", text(o.metrics_interval), L::parent},
        {"metrics-file", o.metrics_file.string(), L::parent},
        {"peer", o.peer, L::restart},
    };
}

std::string child_options_text(const Options& opts) {
    std::string out;
    for (const auto& v : option_values(opts)) {
        if (v.live == Live::children) {
            out += v.name + " = " + v.value + "\n";
        }
    }
    return out;
}

bool apply_options_text(Options& opts, const std::string& text, std::string& error) {
    Options copy = opts;
    CLI::App app;
    add_options(app, copy);
    app.set_config(); // this text alone, not the default settings file as well
    std::istringstream in(text);
    try {
        app.parse_from_stream(in);
    } catch (const CLI::ParseError& e) {
        error = e.what();
        return false;
    }
    if (auto why = validate(copy); !why.empty()) {
        error = why;
        return false;
    }
    opts = std::move(copy);
    return true;
}

} // namespace lonc
