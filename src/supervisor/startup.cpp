#include "lonc/supervisor/startup.hpp"

#include "lonc/core/fd.hpp"
#include "lonc/runtime/net.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <memory>
#include <pwd.h>
#include <set>
#include <spawn.h>
#include <sstream>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace lonc {

namespace {

std::filesystem::path from(const std::filesystem::path& base, const std::filesystem::path& p) {
    return p.empty() || p.is_absolute() ? p : base / p;
}

// The setting closest to a misspelt one ("" if none is close).
std::string closest_setting(const CLI::App& app, const std::string& name) {
    std::vector<std::string> names;
    for (const auto* opt : app.get_options()) {
        for (const auto& n : opt->get_lnames()) {
            names.push_back(n);
        }
    }
    return closest(name, names);
}

// The settings file's lines checked one at a time, each as a settings file
// of its own, so every problem gets its line number.
std::vector<Problem> settings_problems(const std::string& path) {
    std::vector<Problem> out;
    const auto text = read_file(path);
    if (!text) {
        out.push_back({path, 0, std::string("cannot read: ") + std::strerror(errno)});
        return out;
    }
    std::istringstream lines(*text);
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
        CLI::App app;
        Options scratch;
        add_options(app, scratch);
        app.set_config(); // this line alone: parsing it must not read the default file again
        std::istringstream one(line);
        try {
            app.parse_from_stream(one);
        } catch (const CLI::ParseError& e) {
            std::string why = e.what();
            std::istringstream again(line);
            const auto items = CLI::ConfigINI().from_config(again);
            if (!items.empty() && app.get_option_no_throw("--" + items.front().name) == nullptr) {
                const auto name = items.front().name;
                const auto near = closest_setting(app, name);
                why = "unknown setting '" + name + "'" +
                      (near.empty() ? std::string(" (lonc --help lists them)")
                                    : "; did you mean '" + near + "'?");
            }
            out.push_back({path, number, why});
        }
    }
    return out;
}

// The settings file the command line names, or the default one when the
// command line names none and it exists ("" : none).
std::string settings_read(const CLI::App& app) {
    const auto* settings = app.get_config_ptr();
    if (settings->count() > 0) {
        return settings->as<std::string>();
    }
    std::error_code ec;
    return std::filesystem::exists(default_settings_file, ec) ? default_settings_file : "";
}

} // namespace

int Loaded::code() const {
    if (!usage.empty()) {
        return exit_usage;
    }
    return info.empty() && !config.ok() ? exit_config : exit_ok;
}

std::vector<std::string> Loaded::problems() const {
    std::vector<std::string> out;
    for (const auto& p : usage) {
        out.push_back(p.to_string());
    }
    for (const auto& p : config.problems) {
        out.push_back(p.to_string());
    }
    if (out.empty() && !info.empty()) {
        out.emplace_back("the command line asks for --help or --version");
    }
    return out;
}

Loaded load_configuration(const std::vector<std::string>& args, const std::filesystem::path& base) {
    Loaded r;
    CLI::App app{"lonc - LON-CAPA connection daemon"};
    add_options(app, r.opts);
    app.get_config_ptr()->transform(
        [&base](const std::string& p) { return from(base, p).string(); });
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    if (!reversed.empty()) {
        reversed.pop_back(); // the program
    }
    const auto command_line = reversed; // parse() consumes its argument
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        std::ostringstream out;
        std::ostringstream err;
        if (app.exit(e, out, err) == 0) {
            r.info = out.str();
            return r;
        }
        const auto path = settings_read(app);
        if (!path.empty()) {
            r.usage = settings_problems(path);
        }
        if (r.usage.empty()) {
            r.usage.push_back({"command line", 0, e.what()});
        }
        return r;
    }
    if (auto why = validate(r.opts); !why.empty()) {
        r.usage.push_back({"options", 0, why});
        return r;
    }
    r.opts.config = from(base, r.opts.config);
    r.opts.settings_file = settings_read(app);
    // Where each value came from: the command line wins, then the file.
    std::set<std::string> in_file;
    if (!r.opts.settings_file.empty()) {
        if (const auto text = read_file(r.opts.settings_file)) {
            std::istringstream in(*text);
            for (const auto& item : CLI::ConfigINI().from_config(in)) {
                if (const auto* opt = app.get_option_no_throw("--" + item.name)) {
                    in_file.insert(opt->get_lnames().front());
                }
            }
        }
    }
    CLI::App line_only;
    Options scratch;
    add_options(line_only, scratch);
    line_only.set_config(); // no settings file: what the command line alone sets
    line_only.allow_extras();
    try {
        auto again = command_line;
        line_only.parse(again);
    } catch (const CLI::ParseError&) {
        // it parsed above with the file; without it nothing new can fail
    }
    for (const auto* opt : line_only.get_options()) {
        if (opt->get_lnames().empty()) {
            continue;
        }
        const auto& name = opt->get_lnames().front();
        r.origin[name] = opt->count() > 0      ? "command line"
                         : in_file.count(name) ? r.opts.settings_file.string()
                                               : "default";
    }
    r.config = load_config(r.opts.config);
    return r;
}

int become_user(const std::string& user, std::string& error) {
    errno = 0;
    const passwd* pw = ::getpwnam(user.c_str());
    if (pw == nullptr) {
        error = "user '" + user + "' does not exist";
        return exit_wrong_user;
    }
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    if (::geteuid() != 0) {
        if (::geteuid() != uid) {
            error =
                "lonc must run as user " + user + " (or start as root with --user " + user + ")";
            return exit_wrong_user;
        }
        return exit_ok;
    }
    if (uid == 0) {
        error = "refusing to run as root: --user names uid 0";
        return exit_wrong_user;
    }
    if (::initgroups(user.c_str(), gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
        error = "cannot switch to user " + user + ": " + std::strerror(errno);
        return exit_wrong_user;
    }
    if (::setuid(0) == 0 || ::geteuid() == 0) {
        error = "could regain root after switching to " + user;
        return exit_wrong_user;
    }
#if defined(__SANITIZE_ADDRESS__)
    // Changing uid made us undumpable, and LeakSanitizer must ptrace its own
    // process at exit. Sanitizer builds only: a release lonc stays undumpable.
    ::prctl(PR_SET_DUMPABLE, 1);
#endif
    return exit_ok;
}

void mail_alert(const Options& opts, const Config& cfg, const std::string& subject,
                const std::string& body) {
    std::string cmd = opts.mail_command;
    if (cmd == "auto") {
        cmd = ::access("/usr/sbin/sendmail", X_OK) == 0 ? "/usr/sbin/sendmail -t" : "";
    }
    if (cmd.empty() || !cfg.settings) {
        return;
    }
    std::string to = cfg.settings->adm_email;
    if (!cfg.settings->sys_email.empty()) {
        to += (to.empty() ? "" : ",") + cfg.settings->sys_email;
    }
    if (to.empty()) {
        return;
    }
    // Not popen(): the mailer would inherit lonc's blocked signals (TERM,
    // INT, HUP, USR1, USR2, CHLD: lonc reads them from a signalfd) and its
    // ignored SIGPIPE. It gets a clean mask and default dispositions.
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        return;
    }
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, read_end.get(), STDIN_FILENO);
    ::posix_spawnattr_init(&attr);
    sigset_t none;
    sigset_t defaults;
    sigemptyset(&none);
    sigfillset(&defaults);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    pid_t pid = 0;
    const int rc =
        ::posix_spawn(&pid, "/bin/sh", &actions, &attr, const_cast<char**>(argv), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    read_end.reset();
    if (rc != 0) {
        return;
    }
    const std::string mail = "To: " + to + "\nSubject: LON: " + cfg.settings->host_id + " " +
                             subject + "\n\n" + body + "\n";
    // SIGPIPE is ignored here: a mailer that exits early ends the write.
    for (std::size_t at = 0; at < mail.size();) {
        const auto n = ::write(write_end.get(), mail.data() + at, mail.size() - at);
        if (n <= 0 && errno != EINTR) {
            break;
        }
        at += n > 0 ? static_cast<std::size_t>(n) : 0U;
    }
    write_end.reset();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

namespace {

// Why user cannot create files in dir, or "" when it can. Read-only: it
// looks at the modes, as the kernel would (owner, then group, then other).
// What lonc will need to do to a path, as --user.
struct AccessNeed {
    std::string what;
    std::filesystem::path path;
    int mode;          // R_OK, or W_OK | X_OK for a directory lonc writes in
    bool lonc_creates; // a missing directory is fine if its parent is writable
    bool fatal;        // lonc cannot start (or reload) without it
};

// Tries each access as `user` really would: a forked child switches to the
// user (when run as root) and asks faccessat, so search permission on every
// parent, ACLs and read-only mounts all count. Nothing is written. Returns
// one reason per need ("" when it is fine); note says when the check could
// not be made as that user.
std::vector<std::string> access_as(const std::string& user, const std::vector<AccessNeed>& needs,
                                   std::string& note) {
    std::vector<std::string> reasons(needs.size());
    const passwd* pw = ::getpwnam(user.c_str());
    if (pw == nullptr) {
        note = "user '" + user + "' does not exist: access not checked";
        return reasons;
    }
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    if (::geteuid() != 0 && ::geteuid() != uid) {
        const passwd* me = ::getpwuid(::geteuid());
        note = "access checked as " + std::string(me != nullptr ? me->pw_name : "this user") +
               ", not as " + user + " (run -t as root or as " + user + ")";
    }
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        note = std::string("access not checked: pipe: ") + std::strerror(errno);
        return reasons;
    }
    UniqueFd read_end(p[0]);
    UniqueFd write_end(p[1]);
    const pid_t pid = ::fork();
    if (pid < 0) {
        note = std::string("access not checked: fork: ") + std::strerror(errno);
        return reasons;
    }
    if (pid == 0) {
        if (::geteuid() == 0 && uid != 0 &&
            (::initgroups(user.c_str(), gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
            ::_exit(2);
        }
        std::string out;
        for (const auto& n : needs) {
            auto path = n.path;
            int err = 0;
            if (::faccessat(AT_FDCWD, path.c_str(), n.mode, AT_EACCESS) != 0) {
                err = errno;
                if (err == ENOENT && n.lonc_creates && path.has_relative_path() &&
                    ::faccessat(AT_FDCWD, path.parent_path().c_str(), W_OK | X_OK, AT_EACCESS) ==
                        0) {
                    err = 0;
                } else if (err == ENOENT && n.lonc_creates) {
                    err = -errno; // the parent's reason
                }
            }
            out += std::to_string(err) + "\n";
        }
        (void)!::write(write_end.get(), out.data(), out.size());
        ::_exit(0);
    }
    write_end.reset();
    std::string got;
    char buf[512];
    for (ssize_t n = 0; (n = ::read(read_end.get(), buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            break;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        note = "access not checked: cannot switch to user " + user;
        return reasons;
    }
    std::istringstream lines(got);
    std::string line;
    for (std::size_t i = 0; i < needs.size() && std::getline(lines, line); ++i) {
        const int err = std::atoi(line.c_str());
        if (err > 0) {
            reasons[i] = std::strerror(err);
        } else if (err < 0) {
            reasons[i] = std::string("missing, and its parent: ") + std::strerror(-err);
        }
    }
    return reasons;
}

} // namespace

void print_settings(const Loaded& loaded, std::FILE* out) {
    (void)std::fprintf(out, "# settings file: %s\n",
                       loaded.opts.settings_file.empty() ? "none"
                                                         : loaded.opts.settings_file.c_str());
    for (const auto& v : option_values(loaded.opts)) {
        const auto it = loaded.origin.find(v.name);
        (void)std::fprintf(out, "%s = %s  # %s\n", v.name.c_str(), v.value.c_str(),
                           it == loaded.origin.end() ? "default" : it->second.c_str());
    }
}

int print_config_report(const Config& cfg, const Options& opts, std::FILE* out) {
    (void)std::fprintf(out, "config:    %s\n", opts.config.c_str());
    if (cfg.settings) {
        const auto& s = *cfg.settings;
        (void)std::fprintf(out, "host id:   %s\n", s.host_id.c_str());
        (void)std::fprintf(out, "londPort:  %u\n", static_cast<unsigned>(s.lond_port));
        (void)std::fprintf(out, "hosts.tab: %s\n", s.hosts_tab().c_str());
        (void)std::fprintf(out, "log:       %s\n", s.log_file().c_str());
        (void)std::fprintf(out, "pid file:  %s\n", s.pid_file().c_str());
        (void)std::fprintf(out, "sockets:   %s\n", s.sock_dir.c_str());
        (void)std::fprintf(out, "spool:     %s\n", s.spool_dir().c_str());
        (void)std::fprintf(out, "status:    %s\n", (s.status_dir() / "loncstatus.txt").c_str());
        (void)std::fprintf(out, "peers:     %zu\n", cfg.hosts.peers.size());
        for (const auto& p : cfg.hosts.peers) {
            (void)std::fprintf(out, "  %-20s %-15s %s%s\n", p.id.c_str(), p.ip.c_str(),
                               p.hostname.c_str(), p.id == s.host_id ? "  (this host)" : "");
        }
    }
    // What lonc will do as --user, tried as that user: without the log and
    // socket directories it cannot start; without read access to its
    // configuration it cannot reload. Those are problems; the rest warnings.
    std::vector<std::string> warnings;
    std::vector<std::string> errors;
    if (cfg.settings) {
        const auto& s = *cfg.settings;
        std::vector<AccessNeed> needs = {
            {"log directory", s.log_dir(), W_OK | X_OK, false, true},
            {"socket directory", s.sock_dir, W_OK | X_OK, false, true},
            {"access.conf", opts.config, R_OK, false, true},
            {"hosts.tab", s.hosts_tab(), R_OK, false, true},
            {"spool directory", s.spool_dir(), W_OK | X_OK, true, false},
            {"status directory", s.status_dir(), W_OK | X_OK, true, false},
        };
        if (!opts.settings_file.empty()) {
            needs.push_back({"settings file", opts.settings_file, R_OK, false, true});
        }
        std::string note;
        const auto reasons = access_as(opts.user, needs, note);
        if (!note.empty()) {
            warnings.push_back(note);
        }
        for (std::size_t i = 0; i < needs.size(); ++i) {
            if (!reasons[i].empty()) {
                (needs[i].fatal ? errors : warnings)
                    .push_back(needs[i].what + " " + needs[i].path.string() + ": " + reasons[i] +
                               " (as " + opts.user + ")");
            }
        }
    }
    if (!warnings.empty()) {
        (void)std::fprintf(out, "warnings:  %zu\n", warnings.size());
        for (const auto& w : warnings) {
            (void)std::fprintf(out, "  %s\n", w.c_str());
        }
    }
    if (cfg.problems.empty() && errors.empty()) {
        (void)std::fprintf(out, "problems:  none\n");
    } else {
        (void)std::fprintf(out, "problems:  %zu\n", cfg.problems.size() + errors.size());
        for (const auto& p : cfg.problems) {
            (void)std::fprintf(out, "  %s\n", p.to_string().c_str());
        }
        for (const auto& e : errors) {
            (void)std::fprintf(out, "  %s\n", e.c_str());
        }
    }
    const bool starts = cfg.ok() && errors.empty();
    const bool ok = starts && cfg.problems.empty();
    (void)std::fprintf(out, "%s\n",
                       ok       ? "configuration OK"
                       : starts ? "configuration has problems lonc would skip at start"
                                : "configuration has problems");
    return ok ? exit_ok : starts ? exit_config_problems : exit_config;
}

} // namespace lonc
