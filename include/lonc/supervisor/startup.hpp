// Steps every lonc process takes before it serves: reading the
// configuration, dropping root, exit codes.
#pragma once

#include "lonc/core/config.hpp"
#include "lonc/core/options.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace lonc {

// lonc's exit codes.
enum ExitCode : int {
    exit_ok = 0,
    exit_config = 1,     // configuration error
    exit_usage = 2,      // bad command line
    exit_running = 3,    // another lonc is running
    exit_wrong_user = 4, // not root and not --user
    // -t: lonc starts with this configuration, but a reload would not take
    // it (problems a start logs and skips, such as a bad hosts.tab line)
    exit_config_problems = 5,
};

// lonc's whole configuration, read and checked in one go: the command line,
// the --settings file, access.conf and hosts.tab. Start, --check-config and
// every reload use it, so all three judge a configuration alike.
struct Loaded {
    Options opts;
    Config config; // empty when usage is not
    // What is wrong with the command line or the settings file, with
    // file:line where there is one (a settings file line is checked alone).
    std::vector<Problem> usage;
    std::string info; // --help or --version: the text to print, nothing loaded
    // Where each option's value came from: "command line", the settings
    // file's path, or "default" (by long name; for -T).
    std::map<std::string, std::string> origin;

    // exit_usage, exit_config (config not usable), or exit_ok.
    [[nodiscard]] int code() const;
    // Every problem, usage first: the reasons a reload is refused (a reload
    // takes only what --check-config calls OK).
    [[nodiscard]] std::vector<std::string> problems() const;
};

// args: the command line as given (args[0] the program). Relative paths of
// --config and --settings are taken from base (where lonc was started), so
// a reload finds the same files after lonc changed its directory.
[[nodiscard]] Loaded load_configuration(const std::vector<std::string>& args,
                                        const std::filesystem::path& base);

// Started as root: become `user` (its uid, gid and groups) for good.
// Started as that user: nothing to do. Anyone else: exit_wrong_user.
// On failure returns the exit code and sets error.
[[nodiscard]] int become_user(const std::string& user, std::string& error);

// Mails a fatal start error to lonAdmEMail and lonSysEMail, as the
// original did, through --mail-command (auto: "/usr/sbin/sendmail -t" when
// present; empty: never). Best effort: a failing mailer is not an error.
void mail_alert(const Options& opts, const Config& cfg, const std::string& subject,
                const std::string& body);

// Prints the --check-config report to out; returns the exit code of -t:
// exit_ok (a reload would take it), exit_config_problems (a start would,
// skipping what it reports) or exit_config (lonc cannot start with it).
int print_config_report(const Config& cfg, const Options& opts, std::FILE* out);

// -T: every setting in effect, "name = value" with where it came from.
void print_settings(const Loaded& loaded, std::FILE* out);

} // namespace lonc
