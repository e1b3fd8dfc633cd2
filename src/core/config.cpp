#include "lonc/core/config.hpp"

#include "lonc/core/control_words.hpp"
#include "lonc/core/fd.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <unistd.h>

namespace lonc {
namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Calls fn(line_number, line) for each line of text, without the newline.
template <typename Fn> void for_each_line(std::string_view text, Fn&& fn) {
    int number = 0;
    while (!text.empty()) {
        ++number;
        const auto nl = text.find('\n');
        const auto line = text.substr(0, nl);
        fn(number, line);
        if (nl == std::string_view::npos) {
            break;
        }
        text.remove_prefix(nl + 1);
    }
}

std::vector<std::string_view> split_ws(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_space(line[i])) {
            ++i;
        }
        const auto start = i;
        while (i < line.size() && !is_space(line[i])) {
            ++i;
        }
        if (i > start) {
            out.push_back(line.substr(start, i - start));
        }
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace

std::string Problem::to_string() const {
    std::string out = file;
    if (line > 0) {
        out += ':' + std::to_string(line);
    }
    out += ": ";
    out += message;
    return out;
}

const std::string* AccessConf::get(std::string_view name) const {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : &it->second.value;
}

AccessConf parse_access_conf(std::string_view text, std::string file) {
    AccessConf conf;
    conf.file = std::move(file);
    for_each_line(text, [&](int number, std::string_view line) {
        const auto body = trim(line);
        if (body.empty() || body.front() == '#') {
            return;
        }
        const auto words = split_ws(body);
        if (words.empty() || words[0] != "PerlSetVar") {
            return; // another Apache directive: not ours
        }
        if (words.size() < 3) {
            conf.problems.push_back(
                {conf.file, number,
                 "PerlSetVar needs a name and a value: '" + std::string(body) + "'"});
            if (words.size() == 2) {
                conf.valueless[std::string(words[1])] = number;
            }
            return;
        }
        // Apache allows a quoted value ("a b" is one value); LON-CAPA's are
        // plain words. The value is the third field without one pair of
        // quotes around it, or, when that field opens a quote it does not
        // close, the quoted run up to the closing quote.
        const auto from = static_cast<std::size_t>(words[2].data() - body.data());
        std::string_view value = words[2];
        std::size_t end = from + value.size();
        const bool quoted_word = value.size() >= 2 && value.front() == '"' && value.back() == '"';
        if (quoted_word) {
            value = value.substr(1, value.size() - 2);
        } else if (value.front() == '"') {
            if (const auto close = body.find('"', from + 1); close != std::string_view::npos) {
                value = body.substr(from + 1, close - from - 1);
                end = close + 1;
            }
        }
        const auto rest = trim(body.substr(end));
        conf.vars[std::string(words[1])] = ConfValue{std::string(value), number, std::string(rest)};
    });
    return conf;
}

bool spool_suffix(std::string_view id) noexcept {
    if (id == "bad" || id == "sent") {
        return true; // 1700000000.abc.sent would be a marker, not host sent's message
    }
    for (const std::string_view suffix : {bad_suffix, sent_suffix}) {
        if (id.size() >= suffix.size() && id.substr(id.size() - suffix.size()) == suffix) {
            return true;
        }
    }
    return false;
}

bool valid_host_id(std::string_view id) noexcept {
    // Not empty, and no leading dot: that also rules out "." and "..", and
    // keeps lonc's own hidden files in lonSockDir (.lonc-control,
    // .lonc-spool/, sockets being created) apart from every peer's socket.
    if (id.empty() || id.front() == '.' || spool_suffix(id)) {
        return false;
    }
    for (const char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

std::string closest(std::string_view name, const std::vector<std::string>& candidates) {
    auto lower = [](std::string_view s) {
        std::string out(s);
        for (auto& c : out) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        return out;
    };
    const auto a = lower(name);
    std::string best;
    std::size_t best_distance = std::max<std::size_t>(2, a.size() / 3) + 1;
    for (const auto& candidate : candidates) {
        const auto b = lower(candidate);
        std::vector<std::size_t> row(b.size() + 1);
        for (std::size_t j = 0; j <= b.size(); ++j) {
            row[j] = j;
        }
        for (std::size_t i = 1; i <= a.size(); ++i) {
            std::size_t diagonal = row[0];
            row[0] = i;
            for (std::size_t j = 1; j <= b.size(); ++j) {
                const std::size_t up = row[j];
                row[j] = std::min(
                    {row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
                diagonal = up;
            }
        }
        if (row[b.size()] < best_distance) {
            best_distance = row[b.size()];
            best = candidate;
        }
    }
    return best;
}

std::optional<Settings> settings_from(const AccessConf& conf, std::vector<Problem>& problems) {
    Settings s;
    bool ok = true;
    auto need = [&](const char* key) -> std::string {
        const auto* v = conf.get(key);
        if (v == nullptr || v->empty()) {
            if (v != nullptr || conf.valueless.count(key) == 0) { // else its line said so
                // A line with a near miss ("lonSockdir") is the likely cause.
                std::string near;
                int line = 0;
                for (const auto& [name, value] : conf.vars) {
                    if (closest(name, {key}) == key && (line == 0 || value.line < line)) {
                        near = name;
                        line = value.line;
                    }
                }
                problems.push_back(
                    {conf.file, near.empty() ? 0 : line,
                     std::string("required key ") + key + " is missing" +
                         (near.empty() ? "" : "; is " + near + " a misspelling of it?")});
            }
            ok = false;
            return {};
        }
        return *v;
    };
    // The keys lonc reads take one value; more words on the line are
    // probably a mistake (an unquoted value with a space): never ignored.
    for (const char* key : {"lonHostID", "londPort", "lonDaemons", "lonTabDir", "lonSockDir",
                            "lonDocRoot", "lonAdmEMail", "lonSysEMail"}) {
        if (const auto it = conf.vars.find(key);
            it != conf.vars.end() && !it->second.extra.empty()) {
            problems.push_back({conf.file, it->second.line,
                                std::string(key) + " takes one value; extra words after '" +
                                    it->second.value + "': '" + it->second.extra +
                                    "' (quote a value that holds spaces)"});
            ok = false;
        }
    }
    auto line_of = [&](const char* key) {
        const auto it = conf.vars.find(key);
        return it == conf.vars.end() ? 0 : it->second.line;
    };

    s.host_id = need("lonHostID");
    if (!s.host_id.empty() && !valid_host_id(s.host_id)) {
        problems.push_back(
            {conf.file, line_of("lonHostID"),
             "lonHostID '" + s.host_id +
                 "' is not a valid host id (letters, digits, '.', '_', '-'; no leading '.')"});
        ok = false;
    }
    const auto port = need("londPort");
    if (!port.empty()) {
        unsigned value = 0;
        const auto* end = port.data() + port.size();
        const auto [ptr, ec] = std::from_chars(port.data(), end, value);
        if (ec != std::errc{} || ptr != end || value == 0 || value > 65535) {
            problems.push_back({conf.file, line_of("londPort"),
                                "londPort '" + port + "' is not a TCP port number"});
            ok = false;
        } else {
            s.lond_port = static_cast<std::uint16_t>(value);
        }
    }
    s.daemons = need("lonDaemons");
    s.tab_dir = need("lonTabDir");
    s.sock_dir = need("lonSockDir");
    s.doc_root = need("lonDocRoot");
    if (const auto* v = conf.get("lonAdmEMail")) {
        s.adm_email = *v;
    }
    if (const auto* v = conf.get("lonSysEMail")) {
        s.sys_email = *v;
    }
    if (!ok) {
        return std::nullopt;
    }
    return s;
}

const Peer* HostTable::find(std::string_view id) const {
    for (const auto& p : peers) {
        if (p.id == id) {
            return &p;
        }
    }
    return nullptr;
}

HostTable parse_hosts_tab(std::string_view text, std::string file) {
    HostTable table;
    table.file = std::move(file);
    std::map<std::string, int, std::less<>> seen; // id -> line
    for_each_line(text, [&](int number, std::string_view raw) {
        const auto line = trim(raw);
        if (line.empty() || line.front() == '#') {
            return;
        }
        auto bad = [&](const std::string& why) {
            table.problems.push_back({table.file, number, why + ": '" + std::string(line) + "'"});
        };
        std::vector<std::string_view> fields;
        std::string_view rest = line;
        for (;;) {
            const auto colon = rest.find(':');
            fields.push_back(trim(rest.substr(0, colon)));
            if (colon == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(colon + 1);
        }
        if (fields.size() < 5) {
            bad("expected id:domain:role:hostname:ip, found " + std::to_string(fields.size()) +
                " field" + (fields.size() == 1 ? "" : "s"));
            return;
        }
        Peer peer;
        peer.id = std::string(fields[0]);
        peer.domain = std::string(fields[1]);
        peer.role = std::string(fields[2]);
        peer.hostname = std::string(fields[3]);
        peer.ip = std::string(fields[4]);
        peer.line = number;
        if (spool_suffix(peer.id)) {
            const bool whole = peer.id == "bad" || peer.id == "sent";
            bad("host id '" + peer.id + (whole ? "' is bad or sent" : "' ends in .bad or .sent") +
                ", which lonc gives its own files in delayed/ (messages set aside or being "
                "recorded as delivered)");
            return;
        }
        if (!valid_host_id(peer.id)) {
            bad("unsafe host id '" + peer.id +
                "' (letters, digits, '.', '_', '-' only; no leading '.')");
            return;
        }
        if (peer.ip.empty()) {
            return; // an entry without an address is not a peer (as the original)
        }
        if (inet_pton(AF_INET, peer.ip.c_str(), &peer.addr) != 1) {
            bad("ip '" + peer.ip + "' of host " + peer.id + " is not an IPv4 address");
            return;
        }
        if (const auto it = seen.find(peer.id); it != seen.end()) {
            bad("duplicate host id '" + peer.id + "' (first on line " + std::to_string(it->second) +
                ")");
            return;
        }
        seen.emplace(peer.id, number);
        table.peers.push_back(std::move(peer));
    });
    return table;
}

std::optional<std::string> read_file(const std::filesystem::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return std::nullopt;
    }
    std::string data;
    char chunk[16384];
    for (;;) {
        const auto n = ::read(fd.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int saved = errno; // the caller reports it
            fd.reset();
            errno = saved;
            return std::nullopt;
        }
        if (n == 0) {
            break;
        }
        data.append(chunk, static_cast<std::size_t>(n));
    }
    return data;
}

const Peer* Config::own_host() const {
    return settings ? hosts.find(settings->host_id) : nullptr;
}

namespace {

// access.conf's text parsed; hosts.tab's text from read_tab (nullopt and
// why: it cannot be had).
template <typename ReadTab>
Config parse_config(const std::filesystem::path& access_conf, const std::string& access_text,
                    ReadTab read_tab) {
    Config cfg;
    cfg.access_text = access_text;
    auto conf = parse_access_conf(access_text, access_conf.string());
    cfg.problems = conf.problems;
    cfg.settings = settings_from(conf, cfg.problems);
    // In line order, whatever check found them; problems of the whole file
    // (a missing key) after those of a line.
    std::stable_sort(cfg.problems.begin(), cfg.problems.end(),
                     [](const Problem& a, const Problem& b) {
                         const auto key = [](const Problem& p) {
                             return p.line > 0 ? p.line : std::numeric_limits<int>::max();
                         };
                         return key(a) < key(b);
                     });
    if (!cfg.settings) {
        cfg.fatal = true;
        return cfg;
    }
    const auto tab_path = cfg.settings->hosts_tab();
    std::string why;
    const auto tab = read_tab(tab_path, why);
    if (!tab) {
        cfg.problems.push_back({tab_path.string(), 0, "cannot read: " + why});
        cfg.fatal = true;
        return cfg;
    }
    cfg.hosts_text = *tab;
    cfg.hosts = parse_hosts_tab(*tab, tab_path.string());
    cfg.problems.insert(cfg.problems.end(), cfg.hosts.problems.begin(), cfg.hosts.problems.end());
    if (cfg.own_host() == nullptr) {
        cfg.problems.push_back(
            {tab_path.string(), 0,
             "this host's id '" + cfg.settings->host_id + "' (lonHostID) has no entry with an ip"});
        cfg.fatal = true;
    }
    return cfg;
}

} // namespace

Config load_config(const std::filesystem::path& access_conf) {
    const auto text = read_file(access_conf);
    if (!text) {
        Config cfg;
        cfg.problems.push_back(
            {access_conf.string(), 0, std::string("cannot read: ") + std::strerror(errno)});
        cfg.fatal = true;
        return cfg;
    }
    return parse_config(access_conf, *text, [](const std::filesystem::path& tab, std::string& why) {
        auto t = read_file(tab);
        if (!t) {
            why = std::strerror(errno);
        }
        return t;
    });
}

Config config_from(const std::filesystem::path& access_conf, const std::string& access_text,
                   const std::optional<std::string>& hosts_text) {
    return parse_config(access_conf, access_text,
                        [&](const std::filesystem::path& /*tab*/, std::string& why) {
                            why = "it could not be read then";
                            return hosts_text;
                        });
}

} // namespace lonc
