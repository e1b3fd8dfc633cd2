// lonc: the LON-CAPA connection daemon. Parses the command line, checks the
// configuration, drops root, takes the pid file, daemonizes, and hands over
// to the supervisor (or, with --peer, to one peer's child).
#include "lonc/child.hpp"
#include "lonc/config.hpp"
#include "lonc/daemon.hpp"
#include "lonc/log.hpp"
#include "lonc/net.hpp"
#include "lonc/options.hpp"
#include "lonc/signals.hpp"
#include "lonc/startup.hpp"
#include "lonc/supervisor.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

std::string self_exe() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : p.string();
}

} // namespace

int main(int argc, char** argv) {
    // No fastbins. Every child is a fork of the supervisor, whose heap is
    // full of small freed chunks; the child's first larger malloc
    // consolidated them all, writing a header into each: a copy-on-write
    // fault per page. Measured, 1000 peers: private dirty per child 479 ->
    // 190 KiB, page faults 181 -> 108, CPU to its socket 21.7 -> 9.9 ms.
    ::mallopt(M_MXFAST, 0);
    // Nothing inherited from whoever started us stays open (a stray
    // descriptor could hold a lock of ours), except the pid file's across
    // our own re-exec.
    if (const char* keep = std::getenv("LONC_PIDFILE_FD"); keep != nullptr) {
        const int fd = std::atoi(keep);
        if (fd > 3) {
            ::close_range(3, static_cast<unsigned>(fd - 1), 0);
        }
        ::close_range(static_cast<unsigned>(fd + 1), ~0U, 0);
    } else {
        ::close_range(3, ~0U, 0);
    }
    lonc::block_handled_signals();
    ::umask(022);
    const std::vector<std::string> args(argv, argv + argc);
    std::error_code ec;
    const auto cwd = std::filesystem::current_path(ec);

    CLI::App app{"lonc - LON-CAPA connection daemon"};
    lonc::Options opts;
    lonc::add_options(app, opts);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? lonc::exit_ok : lonc::exit_usage;
    }
    if (const auto err = lonc::validate(opts); !err.empty()) {
        std::fprintf(stderr, "lonc: %s\n", err.c_str());
        return lonc::exit_usage;
    }
    opts.config = std::filesystem::absolute(opts.config, ec);

    auto cfg = lonc::load_config(opts.config);
    if (opts.check_config) {
        return lonc::print_config_report(cfg, opts, stdout) ? lonc::exit_ok : lonc::exit_config;
    }
    if (!cfg.ok()) {
        std::string all;
        for (const auto& p : cfg.problems) {
            std::fprintf(stderr, "lonc: %s\n", p.to_string().c_str());
            all += p.to_string() + "\n";
        }
        lonc::mail_alert(opts, cfg, "lonc configuration error", all);
        return lonc::exit_config;
    }
    std::string error;
    if (const int rc = lonc::become_user(opts.user, error); rc != lonc::exit_ok) {
        std::fprintf(stderr, "lonc: %s\n", error.c_str());
        lonc::mail_alert(opts, cfg, "User ID mismatch", error);
        return rc;
    }
    lonc::raise_fd_limit();
    const auto& settings = *cfg.settings;

    if (!opts.peer.empty()) {
        const auto* peer = cfg.hosts.find(opts.peer);
        if (peer == nullptr) {
            std::fprintf(stderr, "lonc: --peer %s: no such host in %s\n", opts.peer.c_str(),
                         settings.hosts_tab().c_str());
            return lonc::exit_config;
        }
        return lonc::run_child({settings, *peer, *cfg.own_host(), opts, -1});
    }

    lonc::log::init(
        {settings.log_file(), "PARENT", spdlog::level::from_str(opts.log_level), opts.foreground});
    auto& lg = lonc::log::get("main");
    if (lg.should_log(spdlog::level::debug)) {
        std::string command_line;
        for (const auto& a : args) {
            command_line += (command_line.empty() ? "" : " ") + a;
        }
        lg.debug("command line: {}", lonc::log::printable(command_line, 1000));
    }

    // After a HUP the pid file (and its lock) comes with us across exec.
    std::optional<lonc::PidFile> pid_file;
    const char* inherited = std::getenv("LONC_PIDFILE_FD");
    if (inherited != nullptr) {
        pid_file = lonc::PidFile::adopt(std::atoi(inherited), settings.pid_file(), error);
        ::unsetenv("LONC_PIDFILE_FD");
    } else {
        pid_file = lonc::PidFile::acquire(settings.pid_file(), error);
    }
    if (!pid_file) {
        std::fprintf(stderr, "lonc: %s\n", error.c_str());
        lg.error("{}", error);
        return error.rfind("cannot open", 0) == 0 ? lonc::exit_config : lonc::exit_running;
    }

    lonc::Launcher launcher;
    if (!opts.foreground && inherited == nullptr) {
        launcher = lonc::daemonize();
    }
    if (!pid_file->write(::getpid())) {
        error = "cannot write " + settings.pid_file().string();
        lg.error("{}", error);
        launcher.report(lonc::exit_config, error);
        return lonc::exit_config;
    }
    return lonc::run_supervisor(
        {opts, std::move(cfg), self_exe(), args, cwd, std::move(*pid_file), std::move(launcher)});
}
