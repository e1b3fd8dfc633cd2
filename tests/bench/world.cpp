#include "world.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <pwd.h>
#include <random>
#include <stdexcept>
#include <unistd.h>

#include "line_client.hpp"

namespace lonc::bench {

using test::Process;
using test::SpawnOptions;

namespace {

std::string current_user() {
    if (::geteuid() == 0) {
        return "www";
    }
    const passwd* pw = ::getpwuid(::geteuid());
    return pw != nullptr ? pw->pw_name : "nobody";
}

void stop(Process& p) {
    if (p.running()) {
        p.signal(SIGTERM);
        if (!p.wait(std::chrono::seconds(10))) {
            p.kill();
        }
    }
}

} // namespace

World::World(const Binaries& bin, int hosts)
    : bin_(bin), dir_("lonc-bench"), user_(current_user()), port_(test::free_port()) {
    // 127.A.B.x, 127.A.B+1.x, ...: 250 hosts per /24, A and B random so
    // that parallel runs (and tests) do not meet.
    std::random_device rd;
    const unsigned a = 1 + rd() % 200;
    const unsigned b = rd() % 200;
    std::string tab = "# id:domain:role:hostname:ip (lonc-bench)\n";
    for (int i = 0; i < hosts; ++i) {
        const auto u = static_cast<unsigned>(i);
        ids_.push_back("b" + std::to_string(i));
        ips_.push_back("127." + std::to_string(a) + "." + std::to_string(b + u / 250) + "." +
                       std::to_string(2 + u % 250));
        tab += ids_.back() + ":benchdom:library:" + ids_.back() +
               ".example.invalid:" + ips_.back() + "\n";
    }
    dir_.write("hosts.tab", tab);
    dir_.make_dir("sanitizer", user_, 0777);
}

World::~World() {
    for (auto& l : loncs_) {
        stop_lonc(l);
    }
    for (auto& [h, p] : relays_) {
        p.kill();
    }
    for (auto& [h, p] : sims_) {
        stop(p);
    }
}

in_addr World::addr(int host) const {
    in_addr a{};
    ::inet_pton(AF_INET, ip(host).c_str(), &a);
    return a;
}

std::vector<std::string> World::env(const std::string& who) const {
    std::vector<std::string> out;
    if (bin_.sanitizer_dir.empty()) {
        return out;
    }
    for (const char* var : {"ASAN_OPTIONS", "UBSAN_OPTIONS"}) {
        const char* old = std::getenv(var);
        out.push_back(std::string(var) + "=" + (old != nullptr ? std::string(old) + ":" : "") +
                      "log_path=" + bin_.sanitizer_dir + "/" + who);
    }
    return out;
}

Process& World::start_sim(int host, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {bin_.lond_sim, "--hosts", hosts_tab().string(), "--port",
                                     std::to_string(port_)};
    if (host < 0) {
        argv.emplace_back("--serve-all");
    } else {
        argv.insert(argv.end(), {"--bind", ip(host), "--id", id(host)});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    SpawnOptions so;
    so.capture_stdout = true;
    so.stderr_file = (dir_ / ("sim-" + std::to_string(host) + ".err")).string();
    so.env = env("sim");
    auto p = Process::spawn(argv, so);
    if (!p.wait_for_output("ready", std::chrono::seconds(30))) {
        throw std::runtime_error("lond-sim did not start: " + test::slurp(so.stderr_file));
    }
    stop(sims_[host]);
    sims_[host] = std::move(p);
    return sims_[host];
}

LoncInstance& World::start_lonc(const std::string& name, const std::vector<std::string>& extra) {
    const auto rel = "lonc-" + name;
    const auto d = dir_ / rel;
    dir_.make_dir(rel + "/logs", user_);
    dir_.make_dir(rel + "/sockets", user_);
    dir_.make_dir(rel + "/sockets/delayed", user_, 0777);
    dir_.make_dir(rel + "/html/lon-status", user_);
    dir_.write(rel + "/access.conf",
               "PerlSetVar lonHostID " + id(0) + "\nPerlSetVar londPort " + std::to_string(port_) +
                   "\nPerlSetVar lonDaemons " + d.string() + "\nPerlSetVar lonTabDir " +
                   dir_.path().string() + "\nPerlSetVar lonSockDir " + d.string() +
                   "/sockets\nPerlSetVar lonDocRoot " + d.string() + "/html\n");
    std::vector<std::string> argv = {
        bin_.lonc, "-c", (d / "access.conf").string(), "--user", user_, "--mail-command", "", "-f"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    SpawnOptions so;
    so.stderr_file = (d / "lonc.stderr").string();
    so.env = env("lonc");
    auto& l = loncs_.emplace_back();
    l.name = name;
    l.dir = d;
    l.proc = Process::spawn(argv, so);
    return l;
}

bool World::wait_sockets(const LoncInstance& l, const std::vector<int>& hosts,
                         std::chrono::milliseconds timeout) const {
    return test::wait_until(
        [&] {
            for (const int h : hosts) {
                if (!std::filesystem::exists(l.socket(id(h)))) {
                    return false;
                }
            }
            return true;
        },
        timeout, std::chrono::milliseconds(5));
}

void World::stop_lonc(LoncInstance& l) {
    stop(l.proc);
}

std::filesystem::path World::start_relay(int host) {
    auto path = dir_ / ("relay-" + id(host));
    SpawnOptions so;
    so.capture_stdout = true;
    so.stderr_file = (dir_ / ("relay-" + id(host) + ".err")).string();
    auto p = Process::spawn({bin_.self, "--bare-relay", path.string(), "--lond",
                             ip(host) + ":" + std::to_string(port_), "--source", ip(0)},
                            so);
    if (!p.wait_for_output("ready", std::chrono::seconds(30))) {
        throw std::runtime_error("the bare relay did not start: " + test::slurp(so.stderr_file));
    }
    relays_[host] = std::move(p);
    return path;
}

pid_t World::relay_pid(int host) const {
    const auto it = relays_.find(host);
    return it == relays_.end() ? -1 : it->second.pid();
}

pid_t World::sim_pid(int host) const {
    const auto it = sims_.find(host);
    return it == sims_.end() ? -1 : it->second.pid();
}

} // namespace lonc::bench
