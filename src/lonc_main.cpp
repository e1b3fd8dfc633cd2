// lonc: the LON-CAPA connection daemon. Parses the command line, checks the
// configuration, drops root, takes the pid file, daemonizes, and hands over
// to the supervisor (or, with --peer, to one peer's child).
#include "lonc/core/config.hpp"
#include "lonc/core/options.hpp"
#include "lonc/relay/child.hpp"
#include "lonc/runtime/daemon.hpp"
#include "lonc/runtime/log.hpp"
#include "lonc/runtime/net.hpp"
#include "lonc/runtime/signals.hpp"
#include "lonc/supervisor/startup.hpp"
#include "lonc/supervisor/supervisor.hpp"
#include "lonc/supervisor/upgrade.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <malloc.h>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// A start error, for journalctl -p err when stderr is the journal.
const char* err_prefix() {
    return lonc::log::stderr_is_journal() ? "<3>" : "";
}

} // namespace

int main(int argc, char** argv) {
    // No fastbins. Every child is a fork of the supervisor, whose heap is
    // full of small freed chunks; the child's first larger malloc
    // consolidated them all, writing a header into each: a copy-on-write
    // fault per page. Measured, 1000 peers: private dirty per child 479 ->
    // 190 KiB, page faults 181 -> 108, CPU to its socket 21.7 -> 9.9 ms.
    ::mallopt(M_MXFAST, 0);
    // Executed by lonctl upgrade: the old supervisor's descriptors named in
    // LONC_UPGRADE stay open; nothing else inherited does.
    auto arrival = lonc::Arrival::from_environment();
    arrival.close_the_rest();
    lonc::block_handled_signals();
    ::umask(022);
    const std::vector<std::string> args(argv, argv + argc);
    std::error_code ec;
    const auto cwd = std::filesystem::current_path(ec);

    auto loaded = lonc::load_configuration(args, cwd);
    if (!loaded.info.empty()) {
        (void)std::fputs(loaded.info.c_str(), stdout);
        return lonc::exit_ok;
    }
    if (!loaded.usage.empty()) {
        for (const auto& p : loaded.usage) {
            (void)std::fprintf(stderr, "%slonc: %s\n", err_prefix(), p.to_string().c_str());
        }
        (void)std::fprintf(stderr, "%sRun with --help for more information.\n", err_prefix());
        return lonc::exit_usage;
    }
    arrival.take_configuration(loaded);
    auto& opts = loaded.opts;
    auto& cfg = loaded.config;
    if (opts.print_settings) {
        lonc::print_settings(loaded, stdout);
        return lonc::exit_ok;
    }
    if (opts.check_config) {
        return lonc::print_config_report(cfg, opts, stdout);
    }
    if (!cfg.ok()) {
        std::string all;
        for (const auto& p : cfg.problems) {
            (void)std::fprintf(stderr, "%slonc: %s\n", err_prefix(), p.to_string().c_str());
            all += p.to_string() + "\n";
        }
        lonc::mail_alert(opts, cfg, "lonc configuration error", all);
        return lonc::exit_config;
    }
    std::string error;
    if (const int rc = lonc::become_user(opts.user, error); rc != lonc::exit_ok) {
        (void)std::fprintf(stderr, "%slonc: %s\n", err_prefix(), error.c_str());
        lonc::mail_alert(opts, cfg, "User ID mismatch", error);
        return rc;
    }
    lonc::raise_fd_limit();
    const auto& settings = *cfg.settings;

    if (!opts.peer.empty()) {
        const auto* peer = cfg.hosts.find(opts.peer);
        if (peer == nullptr) {
            (void)std::fprintf(stderr, "%slonc: --peer %s: no such host in %s\n", err_prefix(),
                               opts.peer.c_str(), settings.hosts_tab().c_str());
            return lonc::exit_config;
        }
        return lonc::run_child({settings, *peer, *cfg.own_host(), opts, -1, false});
    }

    lonc::log::init(
        {settings.log_file(), "PARENT", spdlog::level::from_str(opts.log_level), opts.foreground});
    auto& lg = lonc::log::get("main");
    for (const auto& problem : arrival.problems) {
        lg.error("{}", problem);
    }
    if (lg.should_log(spdlog::level::debug)) {
        std::string command_line;
        for (const auto& a : args) {
            command_line += (command_line.empty() ? "" : " ") + a;
        }
        lg.debug("command line: {}", lonc::log::printable(command_line, 1000));
    }

    lonc::PidFileError taken;
    auto& handover = arrival.handover;
    auto pid_file = handover ? std::optional<lonc::PidFile>(lonc::PidFile::adopt(
                                   lonc::UniqueFd(handover->pid_file_fd), settings.pid_file()))
                             : lonc::PidFile::acquire(settings.pid_file(), taken);
    if (!pid_file) {
        (void)std::fprintf(stderr, "%slonc: %s\n", err_prefix(), taken.text.c_str());
        lg.error("{}", taken.text);
        switch (taken.kind) {
        case lonc::PidFileError::Kind::cannot_open:
            return lonc::exit_config;
        case lonc::PidFileError::Kind::running:
            break;
        }
        return lonc::exit_running;
    }

    lonc::Launcher launcher;
    if (!opts.foreground && !arrival.upgrading) { // an upgraded supervisor is a daemon already
        launcher = lonc::daemonize();
    }
    if (!pid_file->write(::getpid())) {
        error = "cannot write " + settings.pid_file().string();
        lg.error("{}", error);
        launcher.report(lonc::exit_config, error);
        return lonc::exit_config;
    }
    return lonc::run_supervisor({std::move(opts), std::move(cfg), args, cwd, std::move(*pid_file),
                                 std::move(launcher), lonc::own_executable(), std::move(handover)});
}
