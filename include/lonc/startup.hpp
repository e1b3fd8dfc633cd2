// Steps every lonc process takes before it serves: reading the
// configuration, dropping root, exit codes.
#pragma once

#include "lonc/config.hpp"
#include "lonc/options.hpp"

#include <string>

namespace lonc {

// lonc's exit codes.
enum ExitCode : int {
    exit_ok = 0,
    exit_config = 1,     // configuration error
    exit_usage = 2,      // bad command line
    exit_running = 3,    // another lonc is running
    exit_wrong_user = 4, // not root and not --user
};

// Started as root: become `user` (its uid, gid and groups) for good.
// Started as that user: nothing to do. Anyone else: exit_wrong_user.
// On failure returns the exit code and sets error.
[[nodiscard]] int become_user(const std::string& user, std::string& error);

// Mails a fatal start error to lonAdmEMail and lonSysEMail, as the
// original did, through --mail-command (auto: "/usr/sbin/sendmail -t" when
// present; empty: never). Best effort: a failing mailer is not an error.
void mail_alert(const Options& opts, const Config& cfg, const std::string& subject,
                const std::string& body);

// Prints the --check-config report to out; true when lonc could start.
bool print_config_report(const Config& cfg, const Options& opts, std::FILE* out);

} // namespace lonc
