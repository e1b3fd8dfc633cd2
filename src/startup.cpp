#include "lonc/startup.hpp"

#include "lonc/net.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace lonc {

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
    std::FILE* p = ::popen(cmd.c_str(), "w");
    if (p == nullptr) {
        return;
    }
    std::fprintf(p, "To: %s\nSubject: LON: %s %s\n\n%s\n", to.c_str(),
                 cfg.settings->host_id.c_str(), subject.c_str(), body.c_str());
    ::pclose(p);
}

bool print_config_report(const Config& cfg, const Options& opts, std::FILE* out) {
    std::fprintf(out, "config:    %s\n", opts.config.c_str());
    if (cfg.settings) {
        const auto& s = *cfg.settings;
        std::fprintf(out, "host id:   %s\n", s.host_id.c_str());
        std::fprintf(out, "londPort:  %u\n", static_cast<unsigned>(s.lond_port));
        std::fprintf(out, "hosts.tab: %s\n", s.hosts_tab().c_str());
        std::fprintf(out, "log:       %s\n", s.log_file().c_str());
        std::fprintf(out, "pid file:  %s\n", s.pid_file().c_str());
        std::fprintf(out, "sockets:   %s\n", s.sock_dir.c_str());
        std::fprintf(out, "spool:     %s\n", s.spool_dir().c_str());
        std::fprintf(out, "status:    %s\n", (s.status_dir() / "loncstatus.txt").c_str());
        std::fprintf(out, "peers:     %zu\n", cfg.hosts.peers.size());
        for (const auto& p : cfg.hosts.peers) {
            std::fprintf(out, "  %-20s %-15s %s%s\n", p.id.c_str(), p.ip.c_str(),
                         p.hostname.c_str(), p.id == s.host_id ? "  (this host)" : "");
        }
    }
    if (cfg.problems.empty()) {
        std::fprintf(out, "problems:  none\n");
    } else {
        std::fprintf(out, "problems:  %zu\n", cfg.problems.size());
        for (const auto& p : cfg.problems) {
            std::fprintf(out, "  %s\n", p.to_string().c_str());
        }
    }
    const bool ok = cfg.ok() && cfg.problems.empty();
    std::fprintf(out, "%s\n", ok ? "configuration OK" : "configuration has problems");
    return ok;
}

} // namespace lonc
