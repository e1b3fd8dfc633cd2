#include "lonc/lonctl.hpp"

#include "lonc/spool.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace lonc::ctl {
namespace {

enum class Reach { answered, unreachable, no_answer };

// Connects to a UNIX socket, writes line + '\n', reads the reply: up to the
// first newline (one_line) or to EOF. The whole exchange is bounded by
// timeout_ms.
Reach exchange(const std::filesystem::path& path, const std::string& line, int timeout_ms,
               bool one_line, std::string& reply) {
    reply.clear();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto& p = path.native();
    if (p.size() >= sizeof addr.sun_path) {
        return Reach::unreachable;
    }
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return Reach::unreachable;
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return Reach::unreachable;
    }
    const std::string out = line + "\n";
    if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
        ::close(fd);
        return Reach::no_answer;
    }
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[65536];
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              end - std::chrono::steady_clock::now())
                              .count();
        pollfd pfd{fd, POLLIN, 0};
        if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
            break;
        }
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            ::close(fd);
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
                ::close(fd);
                return Reach::answered;
            }
        }
    }
    ::close(fd);
    reply.clear();
    return Reach::no_answer;
}

const Settings& settings(const Context& ctx) {
    return *ctx.config.settings;
}

bool known_host(const Context& ctx, const std::string& host) {
    return valid_host_id(host) && ctx.config.hosts.find(host) != nullptr;
}

int ms(double seconds) {
    return static_cast<int>(seconds * 1000);
}

// The pid in lonc.pid when that process is alive, else 0.
pid_t running_pid(const Context& ctx) {
    std::ifstream in(settings(ctx).log_dir() / "lonc.pid");
    long pid = 0;
    if (!(in >> pid) || pid <= 0) {
        return 0;
    }
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) {
        return 0;
    }
    return static_cast<pid_t>(pid);
}

// A control request; the reply, or nullopt after telling why on err.
std::optional<std::string> control(const Context& ctx, const std::string& line, bool one_line) {
    std::string reply;
    const auto path = settings(ctx).control_path();
    switch (exchange(path, line, ms(ctx.timeout), one_line, reply)) {
    case Reach::answered:
        return reply;
    case Reach::unreachable:
        std::fprintf(ctx.err, "lonctl: cannot reach lonc's control socket %s: %s\n", path.c_str(),
                     running_pid(ctx) > 0 ? "is this lonc too old, or are you not its user?"
                                          : "lonc is not running");
        return std::nullopt;
    case Reach::no_answer:
        break;
    }
    std::fprintf(ctx.err, "lonctl: lonc did not answer '%s' within %.0f s\n", line.c_str(),
                 ctx.timeout);
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
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string age(std::int64_t seconds) {
    if (seconds < 0) {
        return "-";
    }
    char buf[32];
    if (seconds < 120) {
        std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
    } else if (seconds < 7200) {
        std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(seconds / 60));
    } else if (seconds < 172800) {
        std::snprintf(buf, sizeof buf, "%lldh", static_cast<long long>(seconds / 3600));
    } else {
        std::snprintf(buf, sizeof buf, "%lldd", static_cast<long long>(seconds / 86400));
    }
    return buf;
}

struct SpoolFileInfo {
    std::string name;
    std::string host;
    bool bad = false;
    std::int64_t mtime = 0;
    std::int64_t size = 0;
};

// delayed/ entries for host ("" = every host): pending and set-aside ones.
std::vector<SpoolFileInfo> spool_files(const Context& ctx, const std::string& host) {
    std::vector<SpoolFileInfo> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(settings(ctx).spool_dir(), ec)) {
        SpoolFileInfo f;
        f.name = e.path().filename().string();
        std::string_view base = f.name;
        if (base.size() > 4 && base.substr(base.size() - 4) == ".bad") {
            base.remove_suffix(4);
            f.bad = true;
        }
        const auto parsed = parse_spool_name(base);
        if (!parsed || (!host.empty() && parsed->host != host)) {
            continue;
        }
        f.host = std::string(parsed->host);
        struct stat st {};
        if (::lstat(e.path().c_str(), &st) == 0) {
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

bool host_arg_ok(const Context& ctx, const std::string& host) {
    if (!host.empty() && !known_host(ctx, host)) {
        std::fprintf(ctx.err, "lonctl: no such host: %s\n", host.c_str());
        return false;
    }
    return true;
}

} // namespace

int send(const Context& ctx, const std::string& host, const std::string& request) {
    if (!known_host(ctx, host)) {
        std::fprintf(ctx.err, "lonctl: no such host: %s\n", host.c_str());
        return absent;
    }
    if (request.find('\n') != std::string::npos) {
        std::fprintf(ctx.err, "lonctl: a request is one line\n");
        return usage;
    }
    std::string reply;
    const auto path = settings(ctx).socket_path(host);
    const auto r = exchange(path, request, ms(ctx.timeout), true, reply);
    if (r == Reach::unreachable) {
        std::fprintf(ctx.err, "lonctl: no socket for %s (%s): is lonc running and the link up?\n",
                     host.c_str(), path.c_str());
        return absent;
    }
    if (r == Reach::no_answer || reply == "con_lost") {
        std::fprintf(ctx.out, "con_lost\n"); // what lonnet makes of it
        return failed;
    }
    std::fprintf(ctx.out, "%s\n", reply.c_str());
    return ok;
}

int status(const Context& ctx, bool json) {
    const auto reply = control(ctx, "status", false);
    if (!reply) {
        return absent;
    }
    if (reply->rfind("error:", 0) == 0) {
        std::fprintf(ctx.err, "lonctl: lonc answered %s", reply->c_str());
        return failed;
    }
    if (json) {
        std::fputs(reply->c_str(), ctx.out);
        return ok;
    }
    const auto doc = nlohmann::json::parse(*reply, nullptr, false);
    if (doc.is_discarded() || !doc.contains("peers")) {
        std::fprintf(ctx.err, "lonctl: lonc's status is not JSON\n");
        return failed;
    }
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::fprintf(ctx.out, "lonc parent %lld, status generation %llu\n",
                 static_cast<long long>(doc["parent"].value("pid", 0)),
                 static_cast<unsigned long long>(doc.value("generation", 0ULL)));
    std::fprintf(ctx.out, "%-16s %7s %-11s %-19s %9s %7s %6s %6s %7s\n", "PEER", "PID", "LINK",
                 "SINCE", "REQUESTS", "ERRORS", "QUEUE", "SPOOL", "OLDEST");
    for (const auto& p : doc["peers"]) {
        const auto pid = p["pid"].is_number() ? std::to_string(p["pid"].get<long long>()) : "-";
        std::string link = p.value("state", "?");
        if (p.value("answered", false)) {
            link = p.value("link", "?");
            const auto up = p.value("links_up", 0LL);
            const auto total = p.value("links_total", 0LL);
            if (total > 1) {
                link += " " + std::to_string(up) + "/" + std::to_string(total);
            }
        }
        const bool has = p.value("answered", false);
        auto num = [&](const char* key) {
            return has ? std::to_string(p.value(key, 0LL)) : std::string("-");
        };
        const auto oldest = p.value("spool_oldest", 0LL);
        std::fprintf(
            ctx.out, "%-16s %7s %-11s %-19s %9s %7s %6s %6s %7s\n", p.value("id", "?").c_str(),
            pid.c_str(), link.c_str(), has ? local_time(p.value("link_since", 0LL)).c_str() : "-",
            num("requests").c_str(), num("errors").c_str(), num("queue").c_str(),
            num("spool_pending").c_str(), has && oldest > 0 ? age(now - oldest).c_str() : "-");
    }
    return ok;
}

int check(const Context& ctx) {
    int result = ok;
    auto fail = [&](int code) { result = std::max(result, code); };
    const auto& cfg = ctx.config;
    std::fprintf(ctx.out, "configuration: %zu peers, %zu problem(s)\n", cfg.hosts.peers.size(),
                 cfg.problems.size());
    for (const auto& p : cfg.problems) {
        std::fprintf(ctx.out, "  %s\n", p.to_string().c_str());
    }
    if (!cfg.ok()) {
        fail(failed);
    }
    const pid_t pid = running_pid(ctx);
    if (pid <= 0) {
        std::fprintf(ctx.out, "lonc: not running (no live pid in %s)\n",
                     (settings(ctx).log_dir() / "lonc.pid").c_str());
        return absent;
    }
    std::fprintf(ctx.out, "lonc: running, pid %d\n", static_cast<int>(pid));
    for (const auto& peer : cfg.hosts.peers) {
        const auto path = settings(ctx).socket_path(peer.id);
        std::string reply;
        const auto r = exchange(path, "ping", ms(ctx.timeout), true, reply);
        const char* verdict = "ok";
        std::string detail;
        if (r == Reach::unreachable) {
            verdict = "FAIL";
            detail = std::filesystem::exists(path) ? "socket does not answer" : "no socket";
        } else if (r == Reach::no_answer || reply == "con_lost") {
            verdict = "FAIL";
            detail = "ping: con_lost";
        } else {
            detail = "ping: " + reply;
        }
        if (verdict[0] == 'F') {
            fail(failed);
        }
        std::fprintf(ctx.out, "%-16s %-4s %s\n", peer.id.c_str(), verdict, detail.c_str());
    }
    return result;
}

int reconnect(const Context& ctx, const std::string& host) {
    if (!known_host(ctx, host)) {
        std::fprintf(ctx.err, "lonctl: no such host: %s\n", host.c_str());
        return absent;
    }
    const auto reply = control(ctx, "reconnect " + host, true);
    if (!reply) {
        return absent;
    }
    if (*reply != "ok") {
        std::fprintf(ctx.err, "lonctl: lonc answered %s\n", reply->c_str());
        return *reply == "error:no_such_host" ? absent : failed;
    }
    std::fprintf(ctx.out, "reconnecting %s\n", host.c_str());
    return ok;
}

int reload(const Context& ctx) {
    std::string reply;
    const auto path = settings(ctx).control_path();
    switch (exchange(path, "reload", ms(ctx.timeout), false, reply)) {
    case Reach::answered:
        break;
    case Reach::unreachable:
        if (const pid_t pid = running_pid(ctx); pid > 0) {
            std::fprintf(ctx.err,
                         "lonctl: reload rejected: lonc (pid %d) runs, but not with the control "
                         "socket %s this configuration names; a changed lonSockDir needs a "
                         "restart of lonc\n",
                         static_cast<int>(pid), path.c_str());
            return failed;
        }
        std::fprintf(ctx.err, "lonctl: lonc is not running (no control socket %s)\n", path.c_str());
        return absent;
    case Reach::no_answer:
        std::fprintf(ctx.err, "lonctl: lonc did not answer 'reload' within %.0f s\n", ctx.timeout);
        return failed;
    }
    const auto nl = reply.find('\n');
    const auto verdict = reply.substr(0, nl);
    auto rest = nl == std::string::npos ? std::string() : reply.substr(nl + 1);
    while (!rest.empty() && rest.back() == '\n') {
        rest.pop_back();
    }
    if (verdict == "applied") {
        std::fprintf(ctx.out, "applied: %s\n", rest.c_str());
        return ok;
    }
    if (verdict == "rejected") {
        std::fprintf(ctx.err, "lonctl: reload rejected; lonc runs on unchanged:\n");
        std::size_t start = 0;
        while (start < rest.size()) {
            const auto end = rest.find('\n', start);
            std::fprintf(ctx.err, "  %s\n", rest.substr(start, end - start).c_str());
            start = end == std::string::npos ? rest.size() : end + 1;
        }
        return failed;
    }
    std::fprintf(ctx.err, "lonctl: lonc answered %s\n", verdict.c_str());
    return failed;
}

int spool_list(const Context& ctx, const std::string& host) {
    if (!host_arg_ok(ctx, host)) {
        return absent;
    }
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::size_t pending = 0;
    std::size_t bad = 0;
    std::fprintf(ctx.out, "%-16s %-7s %6s %8s  %s\n", "HOST", "STATE", "AGE", "BYTES", "FILE");
    for (const auto& f : spool_files(ctx, host)) {
        std::fprintf(ctx.out, "%-16s %-7s %6s %8lld  %s\n", f.host.c_str(),
                     f.bad ? "bad" : "pending", age(now - f.mtime).c_str(),
                     static_cast<long long>(f.size), f.name.c_str());
        (f.bad ? bad : pending)++;
    }
    std::fprintf(ctx.out, "%zu pending, %zu bad\n", pending, bad);
    return ok;
}

namespace {

// Applies act to every .bad file (of host), reports each failure, prints
// how many it did.
int each_bad_file(const Context& ctx, const std::string& host, const char* what,
                  bool (*act)(const std::filesystem::path& dir, const std::string& name)) {
    if (!host_arg_ok(ctx, host)) {
        return absent;
    }
    int result = ok;
    std::size_t n = 0;
    for (const auto& f : spool_files(ctx, host)) {
        if (!f.bad) {
            continue;
        }
        if (!act(settings(ctx).spool_dir(), f.name)) {
            std::fprintf(ctx.err, "lonctl: %s: %s\n", f.name.c_str(), std::strerror(errno));
            result = failed;
            continue;
        }
        ++n;
    }
    std::fprintf(ctx.out, "%zu %s\n", n, what);
    return result;
}

} // namespace

int spool_retry(const Context& ctx, const std::string& host) {
    return each_bad_file(ctx, host, "file(s) put back for delivery",
                         [](const std::filesystem::path& dir, const std::string& name) {
                             // Never over another file; lonc's inotify watch sees a rename.
                             const auto to = dir / name.substr(0, name.size() - 4);
                             return ::renameat2(AT_FDCWD, (dir / name).c_str(), AT_FDCWD,
                                                to.c_str(), RENAME_NOREPLACE) == 0;
                         });
}

int spool_purge_bad(const Context& ctx, const std::string& host) {
    return each_bad_file(ctx, host, "bad file(s) deleted",
                         [](const std::filesystem::path& dir, const std::string& name) {
                             return ::unlink((dir / name).c_str()) == 0;
                         });
}

} // namespace lonc::ctl
