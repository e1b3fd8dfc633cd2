// Configuration: LON-CAPA's access.conf (PerlSetVar lines) and hosts.tab.
//
// Readers never throw on bad content: they return what they could read plus a
// list of problems, each with file:line, so the caller decides (the daemon
// warns and serves the good entries; --check-config reports and fails).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lonc {

// One thing wrong with a configuration file. line is 0 when the problem
// concerns the file as a whole (unreadable, a required key missing).
struct Problem {
    std::string file;
    int line = 0;
    std::string message;

    [[nodiscard]] std::string to_string() const;
};

// A value set by a PerlSetVar line, with where it was set.
struct ConfValue {
    std::string value;
    int line = 0;
    std::string extra; // words after the value (an error for the keys lonc reads)
};

// access.conf as read: every PerlSetVar NAME VALUE, later lines winning.
struct AccessConf {
    std::string file;
    std::map<std::string, ConfValue, std::less<>> vars;
    std::vector<Problem> problems;
    // NAME -> line of a "PerlSetVar NAME" with no value (already a problem).
    std::map<std::string, int, std::less<>> valueless;

    [[nodiscard]] const std::string* get(std::string_view name) const;
};

[[nodiscard]] AccessConf parse_access_conf(std::string_view text, std::string file);

// The keys lonc needs, checked and typed.
struct Settings {
    std::string host_id;            // lonHostID
    std::uint16_t lond_port = 0;    // londPort
    std::filesystem::path daemons;  // lonDaemons: logs/ lives here
    std::filesystem::path tab_dir;  // lonTabDir: holds hosts.tab
    std::filesystem::path sock_dir; // lonSockDir: UNIX sockets and delayed/
    std::filesystem::path doc_root; // lonDocRoot: lon-status/ lives here
    std::string adm_email;          // lonAdmEMail (may be empty)
    std::string sys_email;          // lonSysEMail (may be empty)

    [[nodiscard]] std::filesystem::path log_dir() const { return daemons / "logs"; }
    [[nodiscard]] std::filesystem::path log_file() const { return log_dir() / "lonc.log"; }
    [[nodiscard]] std::filesystem::path perm_log_file() const {
        return log_dir() / "lonnet.perm.log";
    }
    [[nodiscard]] std::filesystem::path pid_file() const { return log_dir() / "lonc.pid"; }
    [[nodiscard]] std::filesystem::path hosts_tab() const { return tab_dir / "hosts.tab"; }
    [[nodiscard]] std::filesystem::path spool_dir() const { return sock_dir / "delayed"; }
    [[nodiscard]] std::filesystem::path status_dir() const { return doc_root / "lon-status"; }
    // The supervisor's control socket for lonctl (a hidden name: no host id
    // starts with a dot).
    [[nodiscard]] std::filesystem::path control_path() const { return sock_dir / ".lonc-control"; }
    [[nodiscard]] std::filesystem::path socket_path(std::string_view host) const {
        return sock_dir / std::string(host);
    }
};

// The candidate closest to a misspelt name (edit distance, letter case
// ignored), or "" when none is close enough to be a likely misspelling.
[[nodiscard]] std::string closest(std::string_view name,
                                  const std::vector<std::string>& candidates);

// Checks the required keys; appends a problem for each missing or bad one,
// except a key whose only line had no value: conf.problems names that line
// already. A key lonc reads with extra words after its value is a problem.
[[nodiscard]] std::optional<Settings> settings_from(const AccessConf& conf,
                                                    std::vector<Problem>& problems);

// A host id is used as a file name: [A-Za-z0-9._-]+ not starting with "."
// (so never "." or "..", nor one of lonc's own hidden files), neither
// ending in .bad or .sent nor being "bad" or "sent" (spool_suffix: the names
// of lonc's own files in delayed/, <name>.bad and <name>.sent, would read as
// another host's, and host "sent"'s 1700000000.abc.sent as a marker).
[[nodiscard]] bool valid_host_id(std::string_view id) noexcept;
[[nodiscard]] bool spool_suffix(std::string_view id) noexcept;

// One hosts.tab entry with an address.
struct Peer {
    std::string id;
    std::string domain;
    std::string role;
    std::string hostname;
    std::string ip; // dotted quad as written
    in_addr addr{};
    int line = 0;
};

struct HostTable {
    std::string file;
    std::vector<Peer> peers; // good entries, in file order
    std::vector<Problem> problems;

    [[nodiscard]] const Peer* find(std::string_view id) const;
};

[[nodiscard]] HostTable parse_hosts_tab(std::string_view text, std::string file);

// Everything lonc reads at start or on HUP. ok() is false when lonc cannot
// run with it: a required key missing, unreadable files, or this host's own
// id absent from hosts.tab. Bad hosts.tab lines alone do not make it fatal;
// they are in problems (the daemon logs them and serves the rest).
struct Config {
    std::optional<Settings> settings;
    HostTable hosts;
    std::vector<Problem> problems; // all of them, access.conf first
    bool fatal = false;
    // The bytes it was read from (an upgrade hands them to the new binary).
    std::string access_text;
    std::string hosts_text;

    [[nodiscard]] bool ok() const { return settings.has_value() && !fatal; }
    [[nodiscard]] const Peer* own_host() const;
};

[[nodiscard]] Config load_config(const std::filesystem::path& access_conf);
// The same from texts read before (no file is opened): access.conf's, and
// hosts.tab's (nullopt: unreadable then).
[[nodiscard]] Config config_from(const std::filesystem::path& access_conf,
                                 const std::string& access_text,
                                 const std::optional<std::string>& hosts_text);

// Reads a whole file; nullopt with errno set when it cannot.
[[nodiscard]] std::optional<std::string> read_file(const std::filesystem::path& path);

} // namespace lonc
