#include "lonc/ctl/lonctl.hpp"

#include "lonc/core/child_report.hpp"
#include "lonc/core/control_words.hpp"
#include "lonc/core/fd.hpp"
#include "lonc/core/spool.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

namespace lonc::ctl {
namespace {

using nlohmann::json;
namespace k = status_key;

enum class Reach { answered, unreachable, no_answer };

// Connects to a UNIX socket, writes line + '\n', reads the reply: up to the
// first newline (one_line) or to EOF. The whole exchange is bounded by
// timeout_ms. When unreachable, error is connect's errno.
Reach exchange(const std::filesystem::path& path, const std::string& line, int timeout_ms,
               bool one_line, std::string& reply, int& error) {
    reply.clear();
    error = 0;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto& p = path.native();
    if (p.size() >= sizeof addr.sun_path) {
        error = ENAMETOOLONG;
        return Reach::unreachable;
    }
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    const UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        error = errno;
        return Reach::unreachable;
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        error = errno;
        return Reach::unreachable;
    }
    const std::string out = line + "\n";
    if (::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(out.size())) {
        return Reach::no_answer;
    }
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[65536];
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              end - std::chrono::steady_clock::now())
                              .count();
        pollfd pfd{fd.get(), POLLIN, 0};
        if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
            break;
        }
        const auto n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) {
            if (n == 0 && !one_line && !reply.empty()) {
                return Reach::answered;
            }
            reply.clear();
            return Reach::no_answer;
        }
        reply.append(buf, static_cast<std::size_t>(n));
        if (one_line) {
            if (const auto nl = reply.find('\n'); nl != std::string::npos) {
                reply.resize(nl);
                return Reach::answered;
            }
        }
    }
    reply.clear();
    return Reach::no_answer;
}

const char* exit_name(int code) {
    switch (code) {
    case usage:
        return "usage";
    case rejected:
        return "rejected";
    case not_running:
        return "not_running";
    case permission:
        return "permission";
    case no_such_host:
        return "no_such_host";
    case peer_down:
        return "peer_down";
    case bad_config:
        return "configuration";
    default:
        return "failed";
    }
}

bool refused(int error) {
    return error == EACCES || error == EPERM;
}

void print(const Context& ctx, const json& doc) {
    (void)std::fprintf(ctx.out, "%s\n", doc.dump(2).c_str());
}

const Settings& settings(const Context& ctx) {
    return *ctx.config.settings;
}

int ms(double seconds) {
    return static_cast<int>(seconds * 1000);
}

std::string cause(const std::filesystem::path& path, int error) {
    return path.string() + ": " + std::strerror(error);
}

// Is HOST usable as a peer? ok, or the exit code after saying why: hosts.tab
// unreadable (with its errno) is not "no such host".
int host_check(const Context& ctx, const std::string& host) {
    if (valid_host_id(host) && ctx.config.hosts.find(host) != nullptr) {
        return ok;
    }
    const auto tab = settings(ctx).hosts_tab();
    if (ctx.config.hosts.file.empty() && !read_file(tab)) {
        const int error = errno;
        return fail(ctx, config_failure(error),
                    "cannot read " + cause(tab, error) + "; cannot look up " + host);
    }
    return fail(ctx, no_such_host, "no such host: " + host + " (not in " + tab.string() + ")");
}

// The pid in lonc.pid when that process is alive, 0 when none is, -errno
// when lonc.pid cannot be read for another reason than its absence.
pid_t running_pid(const Context& ctx) {
    const UniqueFile f(std::fopen(settings(ctx).pid_file().c_str(), "re"));
    if (!f) {
        return errno == ENOENT ? 0 : -errno;
    }
    long pid = 0;
    const bool read = std::fscanf(f.get(), "%ld", &pid) == 1;
    if (!read || pid <= 0) {
        return 0;
    }
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) {
        return 0;
    }
    return static_cast<pid_t>(pid);
}

// path (what) could not be reached with error: says why, returns the exit
// code: permission, not_running, or if_running when lonc runs (why: what
// that means).
int unreachable(const Context& ctx, const std::filesystem::path& path, int error,
                const std::string& what, const std::string& why, int if_running) {
    const auto tried = what + ": cannot connect to " + cause(path, error);
    if (refused(error)) {
        return fail(ctx, permission, tried + " (run lonctl as root or as the user lonc runs as)");
    }
    const pid_t pid = running_pid(ctx);
    if (pid < 0) {
        return fail(
            ctx, config_failure(-pid),
            tried + "; cannot tell whether lonc runs: " + cause(settings(ctx).pid_file(), -pid));
    }
    if (pid == 0) {
        return fail(ctx, not_running,
                    tried + "; lonc is not running (no live pid in " +
                        settings(ctx).pid_file().string() + ")");
    }
    return fail(ctx, if_running, tried + "; lonc runs (pid " + std::to_string(pid) + ") " + why);
}

// A control request; the reply, or nullopt after telling why (code: the
// exit code).
std::optional<std::string> control(const Context& ctx, const std::string& line, bool one_line,
                                   int& code) {
    std::string reply;
    int error = 0;
    const auto path = settings(ctx).control_path();
    switch (exchange(path, line, ms(ctx.timeout), one_line, reply, error)) {
    case Reach::answered:
        return reply;
    case Reach::unreachable:
        code = unreachable(ctx, path, error, "lonc's control socket",
                           "without it: is this lonc too old, or started with another lonSockDir?",
                           failed);
        return std::nullopt;
    case Reach::no_answer:
        break;
    }
    char seconds[32];
    (void)std::snprintf(seconds, sizeof seconds, "%.0f", ctx.timeout);
    code = fail(ctx, failed, "lonc did not answer '" + line + "' within " + seconds + " s");
    return std::nullopt;
}

std::string local_time(std::int64_t t) {
    if (t <= 0) {
        return "-";
    }
    const auto tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    char buf[32];
    (void)std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string age(std::int64_t seconds) {
    if (seconds < 0) {
        return "-";
    }
    char buf[32];
    if (seconds < 120) {
        (void)std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
    } else if (seconds < 7200) {
        (void)std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(seconds / 60));
    } else if (seconds < 172800) {
        (void)std::snprintf(buf, sizeof buf, "%lldh", static_cast<long long>(seconds / 3600));
    } else {
        (void)std::snprintf(buf, sizeof buf, "%lldd", static_cast<long long>(seconds / 86400));
    }
    return buf;
}

// Why a peer's link is not up, from its status entry; "" when it is up.
std::string down_reason(const json& p, const ChildReport& report, std::size_t bad) {
    if (!p.value(k::answered, false)) {
        switch (parse_slot_state(p.value(k::state, "")).value_or(SlotState::running)) {
        case SlotState::unreachable:
            return "lond does not answer lonc's probe; probing again";
        case SlotState::probing:
            return "probing lond before starting a child";
        case SlotState::restarting:
            return "child exited; waiting to restart it";
        case SlotState::skipped:
            return "skipped after too many failed attempts (lonctl reconnect retries)";
        case SlotState::draining:
            return "removed from hosts.tab; finishing its requests";
        case SlotState::running:
            break;
        }
        return "child did not answer the status request";
    }
    if (report.health == "sick") {
        return "sick: links die before lond answers a request (" +
               std::to_string(report.link_failures) + " failed attempt" +
               (report.link_failures == 1 ? "" : "s") + "); last: " + report.last_error;
    }
    if (report.link == LinkState::down && !report.last_error.empty()) {
        return report.last_error;
    }
    if (report.link == LinkState::down) {
        return "no link yet";
    }
    if (bad > 0) {
        return std::to_string(bad) + " delayed message" + (bad == 1 ? "" : "s") +
               " set aside as .bad (lonctl spool list)";
    }
    return "";
}

struct SpoolFileInfo {
    std::string name;
    std::string host;
    bool bad = false;
    std::int64_t mtime = 0;
    std::int64_t size = 0;
};

// delayed/ entries for host ("" = every host): pending and set-aside ones;
// nullopt after telling why (code: the exit code) when delayed/ cannot be
// read.
std::optional<std::vector<SpoolFileInfo>> spool_files(const Context& ctx, const std::string& host,
                                                      int& code) {
    std::vector<SpoolFileInfo> out;
    const auto dir = settings(ctx).spool_dir();
    const auto entries = list_spool(dir);
    if (!entries) {
        const int error = errno;
        code = error == ENOENT ? fail(ctx, failed,
                                      "no spool directory: " + cause(dir, error) +
                                          " (lonc makes it when it starts; is lonSockDir right?)")
                               : fail(ctx, config_failure(error),
                                      "cannot read the spool directory " + cause(dir, error));
        return std::nullopt;
    }
    for (const auto& e : *entries) {
        if (e.kind == SpoolKind::sent || (!host.empty() && e.host != host)) {
            continue;
        }
        SpoolFileInfo f;
        f.name = e.name;
        f.bad = e.kind == SpoolKind::bad;
        f.host = e.host;
        struct stat st {};
        if (::lstat((dir / e.name).c_str(), &st) == 0) {
            f.mtime = st.st_mtime;
            f.size = st.st_size;
        }
        out.push_back(std::move(f));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return std::tie(a.host, a.bad, a.mtime, a.name) < std::tie(b.host, b.bad, b.mtime, b.name);
    });
    return out;
}

// delayed/ per host: waiting and set-aside (.bad) files; empty when it
// cannot be read (the spool commands say why).
struct SpoolCount {
    std::size_t pending = 0;
    std::size_t bad = 0;
};
std::map<std::string, SpoolCount> spool_counts(const Context& ctx) {
    std::map<std::string, SpoolCount> out;
    for (const auto& e :
         list_spool(settings(ctx).spool_dir()).value_or(std::vector<SpoolEntry>{})) {
        if (e.kind != SpoolKind::sent) {
            auto& c = out[e.host];
            ++(e.kind == SpoolKind::bad ? c.bad : c.pending);
        }
    }
    return out;
}

// Hosts with files in delayed/ that hosts.tab no longer names, and the words
// for them: no child delivers them.
std::vector<std::pair<std::string, std::string>>
departed(const Context& ctx, const std::map<std::string, SpoolCount>& counts) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [host, n] : counts) {
        const auto& peers = ctx.config.hosts.peers;
        if (std::any_of(peers.begin(), peers.end(), [&](const auto& p) { return p.id == host; })) {
            continue;
        }
        std::string words = "peer no longer in hosts.tab: " + std::to_string(n.pending) +
                            " delayed message" + (n.pending == 1 ? "" : "s");
        if (n.bad > 0) {
            words += " and " + std::to_string(n.bad) + " set aside";
        }
        out.emplace_back(host, words + " will not be delivered");
    }
    return out;
}

} // namespace

int fail(const Context& ctx, int code, const std::string& message) {
    (void)std::fprintf(ctx.err, "lonctl: %s\n", message.c_str());
    if (ctx.json) {
        print(ctx, {{"error", {{"code", code}, {"name", exit_name(code)}, {"message", message}}}});
    }
    return code;
}

int config_failure(int error) {
    return refused(error) ? permission : bad_config;
}

int send(const Context& ctx, const std::string& host, const std::string& request) {
    if (const int code = host_check(ctx, host); code != ok) {
        return code;
    }
    if (request.find('\n') != std::string::npos) {
        return fail(ctx, usage, "a request is one line");
    }
    std::string reply;
    int error = 0;
    const auto path = settings(ctx).socket_path(host);
    const auto r = exchange(path, request, ms(ctx.timeout), true, reply, error);
    if (r == Reach::unreachable) {
        return unreachable(ctx, path, error, "no socket for " + host,
                           "but has no link to " + host + " up (lonctl status says why)",
                           peer_down);
    }
    const bool lost = r == Reach::no_answer || reply == "con_lost";
    if (lost) {
        reply = "con_lost"; // what lonnet makes of it
    }
    if (ctx.json) {
        print(ctx, {{"host", host}, {"reply", reply}});
    } else {
        (void)std::fprintf(ctx.out, "%s\n", reply.c_str());
    }
    if (lost) {
        (void)std::fprintf(ctx.err, "lonctl: %s: con_lost (%s)\n", host.c_str(),
                           r == Reach::no_answer
                               ? "no complete reply in time, or lonc closed the connection"
                               : "the link to lond failed; lonctl status says why");
        return peer_down;
    }
    return ok;
}

int status(const Context& ctx) {
    int code = ok;
    const auto reply = control(ctx, command_line({Command::Verb::status, {}}), false, code);
    if (!reply) {
        return code;
    }
    if (reply->rfind("error:", 0) == 0) {
        return fail(ctx, failed, "lonc answered " + reply->substr(0, reply->find('\n')));
    }
    if (ctx.json) {
        (void)std::fputs(reply->c_str(), ctx.out);
        return ok;
    }
    const auto doc = json::parse(*reply, nullptr, false);
    if (doc.is_discarded() || !doc.contains(k::peers)) {
        return fail(ctx, failed, "lonc's status is not JSON");
    }
    (void)std::fprintf(ctx.out, "lonc parent %lld, status generation %llu\n",
                       static_cast<long long>(doc[k::parent].value(k::pid, 0)),
                       static_cast<unsigned long long>(doc.value(k::generation, 0ULL)));
    (void)std::fprintf(ctx.out, "%-16s %7s %-11s %-19s %9s %7s %6s %6s %7s  %s\n", "PEER", "PID",
                       "LINK", "SINCE", "REQUESTS", "ERRORS", "QUEUE", "SPOOL", "OLDEST", "REASON");
    const auto counts = spool_counts(ctx);
    for (const auto& p : doc[k::peers]) {
        const auto pid = p[k::pid].is_number() ? std::to_string(p[k::pid].get<long long>()) : "-";
        const bool has = p.value(k::answered, false);
        const auto rep = report_from_json(p);
        std::string link = p.value(k::state, "?");
        if (has) {
            link = to_string(rep.link);
            // Links up, of the most the child may open (--max-connections).
            if (const auto most = std::max(rep.links_total, rep.links_max); most > 1) {
                link += " " + std::to_string(rep.links_up) + "/" + std::to_string(most);
            }
        }
        auto num = [&](std::uint64_t n) { return has ? std::to_string(n) : std::string("-"); };
        // An age in seconds, null when nothing waits (docs/status.md).
        const auto oldest_it = p.find(k::spool_oldest_age);
        const std::int64_t oldest =
            oldest_it != p.end() && oldest_it->is_number() ? oldest_it->get<std::int64_t>() : -1;
        const auto it = counts.find(p.value(k::id, ""));
        const auto reason = down_reason(p, rep, it == counts.end() ? 0 : it->second.bad);
        if (has && rep.health == "sick") {
            link = "sick";
        }
        (void)std::fprintf(
            ctx.out, "%-16s %7s %-11s %-19s %9s %7s %6s %6s %7s  %s\n", p.value(k::id, "?").c_str(),
            pid.c_str(), link.c_str(), has ? local_time(rep.since).c_str() : "-",
            num(rep.requests).c_str(), num(rep.errors).c_str(), num(rep.queue).c_str(),
            num(rep.spool_pending).c_str(), has && oldest >= 0 ? age(oldest).c_str() : "-",
            reason.empty() ? "-" : reason.c_str());
    }
    for (const auto& [host, words] : departed(ctx, counts)) {
        (void)std::fprintf(ctx.out, "%-16s %7s %-11s %-19s %9s %7s %6s %6zu %7s  %s\n",
                           host.c_str(), "-", "gone", "-", "-", "-", "-", counts.at(host).pending,
                           "-", words.c_str());
    }
    return ok;
}

int check(const Context& ctx) {
    const auto& cfg = ctx.config;
    json doc = {{"configuration", {{"ok", cfg.ok()}, {"peers", cfg.hosts.peers.size()}}}};
    json problems = json::array();
    for (const auto& p : cfg.problems) {
        problems.push_back(p.to_string());
    }
    doc["configuration"]["problems"] = problems;
    int result = ok;
    if (!cfg.ok()) {
        const auto tab = settings(ctx).hosts_tab();
        result = cfg.hosts.file.empty() && !read_file(tab) ? config_failure(errno) : bad_config;
    }
    const pid_t pid = running_pid(ctx);
    doc["lonc"] = {{"running", pid > 0}, {"pid", pid > 0 ? json(pid) : json(nullptr)}};
    json peers = json::array();
    if (pid > 0) {
        for (const auto& peer : cfg.hosts.peers) {
            const auto path = settings(ctx).socket_path(peer.id);
            std::string reply;
            int error = 0;
            const auto r = exchange(path, "ping", ms(ctx.timeout), true, reply, error);
            bool good = false;
            std::string detail;
            if (r == Reach::unreachable) {
                detail =
                    error == ENOENT ? "no socket" : std::string("socket: ") + std::strerror(error);
                result = result != ok ? result : refused(error) ? permission : peer_down;
            } else if (r == Reach::no_answer || reply == "con_lost") {
                detail = "ping: con_lost";
                result = result != ok ? result : peer_down;
            } else {
                good = true;
                detail = "ping: " + reply;
            }
            peers.push_back({{"id", peer.id}, {"ok", good}, {"detail", detail}});
        }
    }
    doc["peers"] = peers;
    json gone = json::array();
    const auto counts = spool_counts(ctx);
    for (const auto& [host, words] : departed(ctx, counts)) {
        gone.push_back({{"id", host},
                        {"pending", counts.at(host).pending},
                        {"bad", counts.at(host).bad},
                        {"detail", words}});
    }
    doc["departed"] = gone;
    if (ctx.json) {
        print(ctx, doc);
    } else {
        (void)std::fprintf(ctx.out, "configuration: %zu peers, %zu problem(s)\n",
                           cfg.hosts.peers.size(), cfg.problems.size());
        for (const auto& p : cfg.problems) {
            (void)std::fprintf(ctx.out, "  %s\n", p.to_string().c_str());
        }
        if (pid > 0) {
            (void)std::fprintf(ctx.out, "lonc: running, pid %d\n", static_cast<int>(pid));
        } else {
            (void)std::fprintf(ctx.out, "lonc: not running (%s %s)\n",
                               pid == 0 ? "no live pid in" : "cannot read",
                               pid == 0 ? settings(ctx).pid_file().c_str()
                                        : cause(settings(ctx).pid_file(), -pid).c_str());
        }
        for (const auto& p : peers) {
            (void)std::fprintf(ctx.out, "%-16s %-4s %s\n", p["id"].get<std::string>().c_str(),
                               p["ok"].get<bool>() ? "ok" : "FAIL",
                               p["detail"].get<std::string>().c_str());
        }
        for (const auto& g : gone) {
            (void)std::fprintf(ctx.out, "%-16s %-4s %s\n", g["id"].get<std::string>().c_str(),
                               "gone", g["detail"].get<std::string>().c_str());
        }
    }
    if (pid <= 0) {
        return pid == 0 ? not_running : config_failure(-pid);
    }
    return result;
}

int reconnect(const Context& ctx, const std::string& host) {
    if (const int code = host_check(ctx, host); code != ok) {
        return code;
    }
    int code = ok;
    const auto reply = control(ctx, command_line({Command::Verb::reconnect, host}), true, code);
    if (!reply) {
        return code;
    }
    if (*reply != words::ok) {
        return fail(ctx, *reply == words::no_such_host ? no_such_host : failed,
                    "lonc answered " + *reply);
    }
    if (ctx.json) {
        print(ctx, {{"host", host}, {"reconnecting", true}});
    } else {
        (void)std::fprintf(ctx.out, "reconnecting %s\n", host.c_str());
    }
    return ok;
}

namespace {

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto end = text.find('\n', start);
        out.push_back(text.substr(start, end - start));
        start = end == std::string::npos ? text.size() : end + 1;
    }
    return out;
}

} // namespace

namespace {

// A control command answered once lonc has decided (reload, upgrade): the
// reply's first line is the verdict, the rest what was done or, one a line,
// why not.
struct Verdicts {
    std::string_view command;    // what is sent: "reload"
    std::string_view done;       // the verdict of success: "applied"
    const char* unreachable_why; // lonc runs, but its control socket does not answer
    int unreachable_code;
    struct Refusal {
        std::string_view verdict; // "rejected"
        const char* headline;     // the line on err before the reasons
        int code;
    };
    std::vector<Refusal> refusals;
};

int decided(const Context& ctx, const Verdicts& v) {
    std::string reply;
    int error = 0;
    const auto path = settings(ctx).control_path();
    switch (exchange(path, std::string(v.command), ms(ctx.timeout), false, reply, error)) {
    case Reach::answered:
        break;
    case Reach::unreachable:
        return unreachable(ctx, path, error, "lonc's control socket", v.unreachable_why,
                           v.unreachable_code);
    case Reach::no_answer: {
        char seconds[32];
        (void)std::snprintf(seconds, sizeof seconds, "%.0f", ctx.timeout);
        return fail(ctx, failed,
                    "lonc did not answer '" + std::string(v.command) + "' within " + seconds +
                        " s; the outcome will be in lonc.log");
    }
    }
    const auto nl = reply.find('\n');
    const auto verdict = reply.substr(0, nl);
    auto rest = nl == std::string::npos ? std::string() : reply.substr(nl + 1);
    while (!rest.empty() && rest.back() == '\n') {
        rest.pop_back();
    }
    if (verdict == v.done) {
        if (ctx.json) {
            print(ctx, {{"result", verdict}, {verdict, rest}});
        } else {
            (void)std::fprintf(ctx.out, "%s: %s\n", verdict.c_str(), rest.c_str());
        }
        return ok;
    }
    for (const auto& r : v.refusals) {
        if (verdict == r.verdict) {
            const auto reasons = lines(rest);
            if (ctx.json) {
                print(ctx, {{"result", verdict}, {"reasons", reasons}});
            }
            (void)std::fprintf(ctx.err, "lonctl: %s:\n", r.headline);
            for (const auto& reason : reasons) {
                (void)std::fprintf(ctx.err, "  %s\n", reason.c_str());
            }
            return r.code;
        }
    }
    if (verdict == words::shutting_down) {
        return fail(ctx, failed, "lonc is shutting down");
    }
    return fail(ctx, failed, "lonc answered " + verdict);
}

} // namespace

int reload(const Context& ctx) {
    return decided(ctx, {words::reload,
                         words::applied,
                         "but not with this control socket: reload rejected, a changed "
                         "lonSockDir needs a restart of lonc",
                         rejected,
                         {{words::rejected, "reload rejected; lonc runs on unchanged", rejected}}});
}

int upgrade(const Context& ctx) {
    return decided(ctx,
                   {words::upgrade,
                    words::upgraded,
                    "but not on its control socket",
                    failed,
                    {{words::rejected, "upgrade rejected; lonc runs on unchanged", rejected},
                     {words::failed, "upgrade failed; some peers kept their old child", failed}}});
}

int spool_list(const Context& ctx, const std::string& host) {
    if (!host.empty()) {
        if (const int code = host_check(ctx, host); code != ok) {
            return code;
        }
    }
    int code = ok;
    const auto files = spool_files(ctx, host, code);
    if (!files) {
        return code;
    }
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::size_t pending = 0;
    std::size_t bad = 0;
    json list = json::array();
    if (!ctx.json) {
        (void)std::fprintf(ctx.out, "%-16s %-7s %6s %8s  %s\n", "HOST", "STATE", "AGE", "BYTES",
                           "FILE");
    }
    for (const auto& f : *files) {
        const char* state = f.bad ? "bad" : "pending";
        if (ctx.json) {
            list.push_back({{"host", f.host},
                            {"state", state},
                            {"age_seconds", now - f.mtime},
                            {"bytes", f.size},
                            {"file", f.name}});
        } else {
            (void)std::fprintf(ctx.out, "%-16s %-7s %6s %8lld  %s\n", f.host.c_str(), state,
                               age(now - f.mtime).c_str(), static_cast<long long>(f.size),
                               f.name.c_str());
        }
        (f.bad ? bad : pending)++;
    }
    if (ctx.json) {
        print(ctx, {{"files", list}, {"pending", pending}, {"bad", bad}});
    } else {
        (void)std::fprintf(ctx.out, "%zu pending, %zu bad\n", pending, bad);
    }
    return ok;
}

namespace {

// Applies act to every .bad file (of host), reports each failure, prints
// how many it did.
int each_bad_file(const Context& ctx, const std::string& host, const char* what,
                  bool (*act)(const std::filesystem::path& dir, const std::string& name)) {
    if (!host.empty()) {
        if (const int code = host_check(ctx, host); code != ok) {
            return code;
        }
    }
    int result = ok;
    const auto files = spool_files(ctx, host, result);
    if (!files) {
        return result;
    }
    std::size_t n = 0;
    json failures = json::array();
    for (const auto& f : *files) {
        if (!f.bad) {
            continue;
        }
        if (!act(settings(ctx).spool_dir(), f.name)) {
            const int error = errno;
            (void)std::fprintf(ctx.err, "lonctl: %s: %s\n", f.name.c_str(), std::strerror(error));
            failures.push_back({{"file", f.name}, {"error", std::strerror(error)}});
            if (result == ok) {
                result = refused(error) ? permission : failed;
            }
            continue;
        }
        ++n;
    }
    if (ctx.json) {
        print(ctx, {{"done", n}, {"failed", failures}});
    } else {
        (void)std::fprintf(ctx.out, "%zu %s\n", n, what);
    }
    return result;
}

} // namespace

int spool_retry(const Context& ctx, const std::string& host) {
    return each_bad_file(ctx, host, "file(s) put back for delivery",
                         [](const std::filesystem::path& dir, const std::string& name) {
                             // Never over another file; lonc's inotify watch sees a rename.
                             const auto to = dir / name.substr(0, name.size() - 4);
                             if (::renameat2(AT_FDCWD, (dir / name).c_str(), AT_FDCWD, to.c_str(),
                                             RENAME_NOREPLACE) != 0) {
                                 return false;
                             }
                             // lonc's automatic retries start again.
                             (void)::removexattr(to.c_str(), bad_retries_attr);
                             return true;
                         });
}

int spool_purge_bad(const Context& ctx, const std::string& host) {
    return each_bad_file(ctx, host, "bad file(s) deleted",
                         [](const std::filesystem::path& dir, const std::string& name) {
                             return ::unlink((dir / name).c_str()) == 0;
                         });
}

} // namespace lonc::ctl
