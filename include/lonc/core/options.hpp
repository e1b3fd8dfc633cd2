// lonc's command line (CLI11). Every option can also be set in an INI file
// given with --settings; the command line wins. Durations are seconds,
// fractions allowed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace lonc {

// Read when it exists and no --settings is given; --settings FILE replaces
// it, --settings "" reads none.
inline constexpr const char* default_settings_file = "/etc/lonc/lonc.ini";

struct Options {
    // Where and who.
    std::filesystem::path config = "/etc/httpd/conf/access.conf";
    bool foreground = false;
    std::string user = "www";
    bool check_config = false;
    bool print_settings = false; // -T
    std::string log_level = "info";
    // The --settings file read (not an option of its own: the loader sets it).
    std::filesystem::path settings_file;

    // The link to each lond.
    double handshake_timeout = 60;
    double handshake_pause = 5;
    double request_timeout = 300;
    double requeue_grace = 5;
    double retry_min = 2;
    double retry_max = 360;
    std::size_t max_reply = 134217728;
    unsigned connections = 1;
    unsigned pipeline = 1;

    // The clients.
    std::size_t max_line = 1048576;
    std::size_t max_queue = 10000;
    double client_idle_timeout = 600;

    // The supervisor.
    double reprobe_interval = 60;
    double probe_timeout = 20;
    unsigned max_attempts = 5;
    std::string mail_command = "auto"; // auto: /usr/sbin/sendmail -t if present

    // The spool of delayed messages.
    double spool_rescan = 30;
    double spool_bad_age = 60;
    double spool_min_age = 5;        // lonnet reads its file back after 2 s
    unsigned spool_max_attempts = 3; // link deaths before a message is set aside
    double spool_bad_hold = 3600;    // a .bad file is tried again no sooner than this
    std::size_t spool_max_line = 134217728;

    // Operations.
    double metrics_interval = 15;
    std::filesystem::path metrics_file;

    // Debugging aid: run only this peer's child, in the foreground.
    std::string peer;
};

// Adds every option to app, bound to opts, plus --settings and --version.
void add_options(CLI::App& app, Options& opts);

// Checks relations between values; returns an error text or "".
[[nodiscard]] std::string validate(const Options& opts);

// How a running lonc takes a new value of an option at a reload.
enum class Live {
    parent,   // the supervisor uses it (probes, restarts, metrics, mail)
    children, // the supervisor passes it to every running child (timeouts, limits)
    restart,  // only a restart can change it
};

struct OptionValue {
    std::string name; // the long name without "--"
    std::string value;
    Live live;
};

// Every option a running lonc has, its value as text.
[[nodiscard]] std::vector<OptionValue> option_values(const Options& opts);

// The options children take, as "name = value" lines of a settings file,
// and back: applies such text to opts (false, and why, if it does not parse).
[[nodiscard]] std::string child_options_text(const Options& opts);
bool apply_options_text(Options& opts, const std::string& text, std::string& error);

} // namespace lonc
