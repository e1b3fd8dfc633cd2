#include "cluster.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <pwd.h>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "proc_stats.hpp"

namespace lonc::test {

std::string unique_token(const std::string& prefix) {
    static std::atomic<unsigned long> n{0};
    return prefix + std::to_string(::getpid()) + "x" + std::to_string(n++);
}

Run lonctl(const Cluster& c, const std::vector<std::string>& args, const std::string& user) {
    std::string cmd;
    if (!user.empty()) {
        const passwd* pw = ::getpwnam(user.c_str());
        if (pw == nullptr) {
            return {};
        }
        cmd = "setpriv --reuid=" + std::to_string(pw->pw_uid) +
              " --regid=" + std::to_string(pw->pw_gid) + " --clear-groups ";
    }
    cmd += std::string(LONCTL_PATH) + " -c '" + c.conf().string() + "'";
    for (const auto& a : args) {
        cmd += " '" + a + "'";
    }
    const auto out = c.dir() / "lonctl.out";
    const auto err = c.dir() / "lonctl.err";
    cmd += " >'" + out.string() + "' 2>'" + err.string() + "'";
    const int st = std::system(cmd.c_str());
    Run r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

Cluster::Cluster(ClusterOptions opts)
    : World({.hosts = opts.hosts,
             .ids = opts.ids,
             .lonc = opts.lonc_binary.empty() ? lonc_binary() : opts.lonc_binary}),
      opts_(std::move(opts)) {
    (void)make_lonc_tree("");
    // lonnet.perm.log exists on a LON-CAPA server, written by www (lonnet).
    dir().write("logs/lonnet.perm.log", "");
    if (const passwd* pw = ::getpwnam("www")) {
        ::chown(perm_log().c_str(), pw->pw_uid, pw->pw_gid);
    }
    if (opts_.start_sims) {
        for (int i = 0; i < opts_.hosts; ++i) {
            start_sim(i);
        }
    }
    if (opts_.start_lonc) {
        start_lonc(opts_.lonc_args, opts_.foreground);
        if (opts_.wait_sockets && !wait_all_sockets(std::chrono::seconds(20))) {
            throw std::runtime_error("lonc did not create every socket; log:\n" + log());
        }
    }
}

void Cluster::check_sanitizer_reports() const {
    for (const auto& [path, text] : sanitizer_reports()) {
        ADD_FAILURE() << "sanitizer report " << path.string() << ":\n" << text;
    }
}

Cluster::~Cluster() {
    stop_everything();
    check_sanitizer_reports();
    if (::testing::Test::HasFailure()) {
        auto text = log();
        if (text.size() > 8000) {
            text = "...\n" + text.substr(text.size() - 8000);
        }
        std::fprintf(stderr, "---- lonc.log (%s) ----\n%s---- lonc stderr ----\n%s----\n",
                     dir().path().c_str(), text.c_str(), slurp(dir() / "lonc.stderr").c_str());
    }
}

void Cluster::stop_everything() {
    stop_process(lonc_);
    // A daemonized lonc is not our child: stop it through its pid file.
    if (const pid_t pid = lonc_pid(); pid > 0 && ::kill(pid, 0) == 0) {
        ::kill(pid, SIGTERM);
        for (int i = 0; i < 1000 && ::kill(pid, 0) == 0; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ::kill(pid, SIGKILL);
    }
    // Children of a killed parent take a moment to notice (PDEATHSIG).
    wait_until([&] { return children().empty(); }, std::chrono::seconds(5));
    stop_sims();
}

unsigned Cluster::www_uid() {
    const passwd* pw = ::getpwnam("www");
    return pw != nullptr ? pw->pw_uid : 0;
}

std::filesystem::path Cluster::socket(int host) const {
    return dir() / ("sockets/" + id(host));
}
std::filesystem::path Cluster::status_txt() const {
    return dir() / "html/lon-status/loncstatus.txt";
}
std::filesystem::path Cluster::status_json() const {
    return dir() / "html/lon-status/loncstatus.json";
}
std::filesystem::path Cluster::sim_log(int host) const {
    return dir() / ("sim-" + id(host) + ".log");
}

Process& Cluster::start_sim(int host, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--log", sim_log(host).string()};
    args.insert(args.end(), opts_.sim_args.begin(), opts_.sim_args.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return World::start_sim(host, args);
}

Process& Cluster::start_lonc(const std::vector<std::string>& extra, bool foreground,
                             const std::vector<std::string>& env) {
    std::vector<std::string> argv = opts_.lonc_wrapper;
    const auto command = lonc_command(dir().path());
    argv.insert(argv.end(), command.begin(), command.end());
    if (opts_.test_defaults) {
        const std::vector<std::string> args = {
            "--handshake-pause", "0.1", "--retry-min", "0.05", "--retry-max", "0.5",
            "--probe-timeout", "2", "--reprobe-interval", "1",
            // Spool files are delivered at once, not after lonnet's read-back
            // window: the tests that play lonnet set it back to its default.
            "--spool-min-age", "0"};
        argv.insert(argv.end(), args.begin(), args.end());
    } else {
        // The compiled-in defaults, whatever /etc/lonc/lonc.ini says.
        argv.insert(argv.end(), {"--settings", ""});
    }
    if (foreground) {
        argv.emplace_back("-f");
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    SpawnOptions so;
    so.stderr_file = (dir() / "lonc.stderr").string();
    so.env = sanitizer_env("lonc");
    so.env.insert(so.env.end(), env.begin(), env.end());
    lonc_ = Process::spawn(argv, so);
    return lonc_;
}

ExitStatus Cluster::run_lonc(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout) {
    std::vector<std::string> argv = {options().lonc};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions so;
    so.stderr_file = (dir() / "run.out").string();
    so.env = sanitizer_env("run");
    auto p = Process::spawn(argv, so);
    auto st = p.wait(timeout);
    if (!st) {
        p.kill();
        throw std::runtime_error("lonc did not exit within the timeout");
    }
    return *st;
}

pid_t Cluster::lonc_pid() const {
    std::ifstream in(pid_file());
    long pid = 0;
    in >> pid;
    return static_cast<pid_t>(pid);
}

std::vector<pid_t> Cluster::children() const {
    const pid_t parent = lonc_pid();
    return parent > 0 ? children_of(parent) : std::vector<pid_t>{};
}

std::vector<pid_t> Cluster::lonc_pids() const {
    auto pids = children();
    if (const pid_t parent = lonc_pid(); parent > 0 && ::kill(parent, 0) == 0) {
        pids.insert(pids.begin(), parent);
    }
    return pids;
}

long Cluster::lonc_rss_kib() const {
    long total = 0;
    for (const auto pid : lonc_pids()) {
        total += rss_kib(pid);
    }
    return total;
}

std::optional<ExitStatus> Cluster::stop_lonc(std::chrono::milliseconds timeout) {
    if (lonc_.running()) {
        lonc_.signal(SIGTERM);
        return lonc_.wait(timeout);
    }
    const pid_t pid = lonc_pid();
    if (pid <= 0) {
        return std::nullopt;
    }
    ::kill(pid, SIGTERM);
    if (wait_until([&] { return ::kill(pid, 0) != 0; }, timeout)) {
        return ExitStatus{0, 0};
    }
    return std::nullopt;
}

bool Cluster::wait_socket(int host, std::chrono::milliseconds timeout) const {
    return wait_until([&] { return std::filesystem::exists(socket(host)); }, timeout);
}

bool Cluster::wait_no_socket(int host, std::chrono::milliseconds timeout) const {
    return wait_until([&] { return !std::filesystem::exists(socket(host)); }, timeout);
}

bool Cluster::wait_all_sockets(std::chrono::milliseconds timeout) const {
    return wait_until(
        [&] {
            for (int i = 0; i < size(); ++i) {
                if (!std::filesystem::exists(socket(i))) {
                    return false;
                }
            }
            return true;
        },
        timeout);
}

std::optional<std::string> Cluster::request(int host, const std::string& line,
                                            std::chrono::milliseconds timeout) const {
    auto c = LineClient::unix_socket(socket(host).string());
    if (!c) {
        return std::nullopt;
    }
    return c->request(line, timeout);
}

std::optional<LineClient> Cluster::client(int host) const {
    return LineClient::unix_socket(socket(host).string());
}

std::string Cluster::log() const {
    return slurp(log_file());
}

bool Cluster::log_contains(const std::string& regex) const {
    return std::regex_search(log(), std::regex(regex));
}

bool Cluster::wait_log(const std::string& regex, std::chrono::milliseconds timeout) const {
    const std::regex re(regex);
    return wait_until([&] { return std::regex_search(log(), re); }, timeout,
                      std::chrono::milliseconds(20));
}

std::vector<std::vector<std::string>> Cluster::sim_requests(int host) const {
    std::vector<std::vector<std::string>> out;
    std::istringstream in(slurp(sim_log(host)));
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> fields;
        std::size_t start = 0;
        for (;;) {
            const auto tab = line.find('\t', start);
            fields.push_back(line.substr(start, tab - start));
            if (tab == std::string::npos) {
                break;
            }
            start = tab + 1;
        }
        out.push_back(std::move(fields));
    }
    return out;
}

bool Cluster::wait_received(int host, const std::string& line,
                            std::chrono::milliseconds timeout) const {
    return wait_until(
        [&] {
            const auto rows = sim_requests(host);
            return std::any_of(rows.begin(), rows.end(),
                               [&](const auto& row) { return row.back() == line; });
        },
        timeout, std::chrono::milliseconds(20));
}

std::optional<long> Cluster::status_number(int host, const std::string& field) const {
    const auto doc = nlohmann::json::parse(lonctl(*this, {"status", "--json"}).out, nullptr, false);
    if (!doc.is_object() || !doc.contains("peers")) {
        return std::nullopt;
    }
    for (const auto& p : doc["peers"]) {
        if (p.value("id", "") == id(host) && p.contains(field) && p[field].is_number()) {
            return p[field].get<long>();
        }
    }
    return std::nullopt;
}

bool Cluster::wait_status_at_least(int host, const std::string& field, long n,
                                   std::chrono::milliseconds timeout) const {
    return wait_until([&] { return status_number(host, field).value_or(-1) >= n; }, timeout,
                      std::chrono::milliseconds(50));
}

std::filesystem::path Cluster::spool_file(const std::string& name,
                                          const std::string& content) const {
    const auto tmp = spool() / (".tmp-" + name);
    {
        std::ofstream out(tmp, std::ios::binary);
        out << content;
    }
    const auto dst = spool() / name;
    std::filesystem::rename(tmp, dst);
    return dst;
}

std::string Cluster::lonnet_spool_name(int host, const std::string& cmd, std::time_t now) const {
    // lonnet: the first 16 characters of cmd, then non-word characters out.
    std::string middle;
    for (const char ch : cmd.substr(0, 16)) {
        if (std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_') {
            middle += ch;
        }
    }
    return std::to_string(now) + "." + middle + "." + id(host);
}

void Cluster::perm_log_append(const std::string& message) const {
    const auto now = std::time(nullptr);
    tm local{};
    ::localtime_r(&now, &local);
    char when[64];
    (void)std::strftime(when, sizeof when, "%a %b %e %H:%M:%S %Y", &local);
    const auto line = std::to_string(now) + ":" + message + ":" + when + "\n";
    const int fd = ::open(perm_log().c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!::write(fd, line.data(), line.size());
        ::close(fd);
    }
}

Cluster::LonnetSpool Cluster::lonnet_spool(int host, const std::string& cmd,
                                           std::string name) const {
    if (name.empty()) {
        name = lonnet_spool_name(host, cmd, std::time(nullptr));
    }
    const auto path = spool() / name;
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc); // open(">$file")
        out << cmd << "\n";
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::string back;
    {
        std::ifstream in(path, std::ios::binary);
        std::getline(in, back);
    }
    const bool delayed = back == cmd;
    perm_log_append(std::string(delayed ? "D:" : "F:") + id(host) + ":" + cmd);
    return {name, delayed};
}

} // namespace lonc::test

namespace lonc::test {

namespace {
int shell(const std::string& cmd) {
    return std::system(cmd.c_str());
}
} // namespace

DropRule::DropRule(const std::string& ip) : table_(unique_token("lonc_drop_")) {
    const int rc = shell("nft add table inet " + table_ + " && nft 'add chain inet " + table_ +
                         " out { type filter hook output priority 0; policy accept; }' && "
                         "nft add rule inet " +
                         table_ + " out ip daddr " + ip + " drop");
    if (rc != 0) {
        throw std::runtime_error("nft could not install a drop rule for " + ip);
    }
}

DropRule::~DropRule() {
    (void)shell("nft delete table inet " + table_ + " 2>/dev/null");
}

SmallTmpfs::SmallTmpfs(std::filesystem::path dir, const std::string& size, unsigned mode)
    : dir_(std::move(dir)) {
    char octal[8];
    (void)std::snprintf(octal, sizeof octal, "%04o", mode);
    const auto cmd =
        "mount -t tmpfs -o size=" + size + ",mode=" + octal + " tmpfs " + dir_.string();
    if (shell(cmd) != 0) {
        throw std::runtime_error("cannot " + cmd);
    }
    if (::chown(dir_.c_str(), Cluster::www_uid(), static_cast<gid_t>(-1)) != 0) {
        throw std::runtime_error("cannot chown " + dir_.string());
    }
}

SmallTmpfs::~SmallTmpfs() {
    (void)shell("umount -l " + dir_.string());
}

void SmallTmpfs::set_read_only(bool ro) const {
    const auto cmd = std::string("mount -o remount,") + (ro ? "ro " : "rw ") + dir_.string();
    if (shell(cmd) != 0) {
        throw std::runtime_error("cannot " + cmd);
    }
}

void fill_up(const std::filesystem::path& dir) {
    // tmpfs counts whole pages: when a page no longer fits, nothing does.
    (void)shell("dd if=/dev/zero of=" + (dir / "filler").string() + " bs=4096 2>/dev/null");
}

long process_uid(pid_t pid) {
    const auto ids = status_numbers(pid, "Uid"); // real, effective, saved, fs
    return ids.size() >= 2 ? ids[1] : -1;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
        ++n;
    }
    return n;
}

long connects(const Cluster& c, int host) {
    long n = 0;
    for (const auto& row : c.sim_requests(host)) {
        n += row.size() >= 2 && row[1] == "init" ? 1 : 0;
    }
    return n;
}

} // namespace lonc::test
