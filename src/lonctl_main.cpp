// lonctl: the operator's and script's view of a running lonc. Parses the
// command line and calls into the library (src/lonctl.cpp); see lonctl(1).
#include "lonc/core/config.hpp"
#include "lonc/core/options.hpp"
#include "lonc/ctl/lonctl.hpp"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
    namespace ctl = lonc::ctl;
    CLI::App app{"lonctl - look at and talk through a running lonc"};
    app.set_version_flag("--version", std::string("lonctl ") + LONC_VERSION);
    app.require_subcommand(1);
    std::string config = "/etc/httpd/conf/access.conf";
    double timeout = 0; // 0: 310 s for send (lonc's --request-timeout is 300), 400 s for
                        // upgrade (the check, the new links, and the old children's
                        // slowest request), 60 s for reload (one waits for the first
                        // probes), else 10 s
    bool json = false;
    app.fallthrough(); // -c, --timeout and --json also after the subcommand
    auto* config_opt =
        app.add_option("-c,--config", config, "LON-CAPA access.conf")->capture_default_str();
    std::string settings;
    auto* settings_opt = app.add_option(
        "--settings", settings,
        std::string("lonc's settings file, for the access.conf it names (config = ...); default ") +
            lonc::default_settings_file + " when it exists");
    app.add_option("--timeout", timeout, "Seconds to wait for lonc (send: for the reply)")
        ->check(CLI::PositiveNumber);
    app.add_flag("--json", json, "Print data, and failures, as JSON on stdout");

    std::string host;
    std::string request;
    bool encrypt = false;
    auto* send =
        app.add_subcommand("send", "Send one request to HOST through lonc, print the reply");
    send->add_option("HOST", host, "Host id (a socket in lonSockDir)")->required();
    send->add_option("REQUEST", request, "The request line")->required();
    send->add_flag("--encrypt", encrypt, "Send as encrypt:REQUEST (lond sees it encrypted)");
    auto* status = app.add_subcommand("status", "A fresh status from the running lonc");
    auto* check = app.add_subcommand(
        "check", "Check the configuration, the daemon, every socket and every peer's ping");
    auto* reconnect = app.add_subcommand("reconnect", "Drop and re-make HOST's link now");
    reconnect->add_option("HOST", host, "Host id")->required();
    auto* reload = app.add_subcommand(
        "reload", "Reload lonc's configuration (as HUP), wait for the outcome and print it");
    auto* upgrade = app.add_subcommand(
        "upgrade", "Run lonc's binary again (same pid) and hand every peer to a new child, "
                   "without failing a request; wait for the outcome and print it");
    auto* spool = app.add_subcommand("spool", "Delayed messages in lonSockDir/delayed/");
    spool->require_subcommand(1);
    auto* list = spool->add_subcommand("list", "List pending and set-aside (.bad) files");
    auto* retry = spool->add_subcommand("retry", "Put .bad files back for delivery");
    auto* purge = spool->add_subcommand("purge-bad", "Delete .bad files");
    for (auto* sub : {list, retry, purge}) {
        sub->add_option("HOST", host, "Only this host's files");
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? ctl::ok : ctl::usage;
    }
    const bool sending = send->parsed();
    if (timeout == 0) {
        timeout = sending ? 310 : upgrade->parsed() ? 400 : reload->parsed() ? 60 : 10;
    }

    // As lonc finds it: -c, else the settings file's config =, else the default.
    if (config_opt->count() == 0) {
        const bool named = settings_opt->count() > 0;
        std::error_code ec;
        const std::string file = named ? settings
                                       : (std::filesystem::exists(lonc::default_settings_file, ec)
                                              ? lonc::default_settings_file
                                              : "");
        if (!file.empty()) {
            const auto text = lonc::read_file(file);
            if (!text) {
                const ctl::Context early{lonc::Config{}, stdout, stderr, 10, json};
                return ctl::fail(early, ctl::config_failure(errno),
                                 file + ": cannot read: " + std::strerror(errno));
            }
            std::istringstream in(*text);
            try {
                for (const auto& item : CLI::ConfigINI().from_config(in)) {
                    if ((item.name == "config" || item.name == "c") && !item.inputs.empty()) {
                        config = item.inputs.front();
                    }
                }
            } catch (const CLI::Error& e) {
                const ctl::Context early{lonc::Config{}, stdout, stderr, 10, json};
                return ctl::fail(early, ctl::bad_config, file + ": " + e.what());
            }
        }
    }
    const auto cfg = lonc::load_config(config);
    const ctl::Context ctx{cfg, stdout, stderr, timeout, json};
    if (!cfg.settings && reload->parsed()) {
        // A broken access.conf: the running lonc is still there to say
        // what is wrong with it, through lonSockDir if that much is readable.
        if (const auto text = lonc::read_file(config)) {
            const auto conf = lonc::parse_access_conf(*text, config);
            if (const auto* sock_dir = conf.get("lonSockDir");
                sock_dir != nullptr && !sock_dir->empty()) {
                lonc::Config reach = cfg;
                reach.settings.emplace();
                reach.settings->sock_dir = *sock_dir;
                return ctl::reload({reach, stdout, stderr, timeout, json});
            }
        }
    }
    if (!cfg.settings) {
        const int error = lonc::read_file(config) ? 0 : errno;
        for (std::size_t i = 0; i + 1 < cfg.problems.size(); ++i) {
            (void)std::fprintf(stderr, "lonctl: %s\n", cfg.problems[i].to_string().c_str());
        }
        return ctl::fail(ctx, ctl::config_failure(error),
                         cfg.problems.empty() ? config + ": unusable"
                                              : cfg.problems.back().to_string());
    }
    if (sending) {
        return ctl::send(ctx, host, encrypt ? "encrypt:" + request : request);
    }
    if (status->parsed()) {
        return ctl::status(ctx);
    }
    if (check->parsed()) {
        return ctl::check(ctx);
    }
    if (reconnect->parsed()) {
        return ctl::reconnect(ctx, host);
    }
    if (reload->parsed()) {
        return ctl::reload(ctx);
    }
    if (upgrade->parsed()) {
        return ctl::upgrade(ctx);
    }
    if (list->parsed()) {
        return ctl::spool_list(ctx, host);
    }
    if (retry->parsed()) {
        return ctl::spool_retry(ctx, host);
    }
    if (purge->parsed()) {
        return ctl::spool_purge_bad(ctx, host);
    }
    return ctl::usage;
}
