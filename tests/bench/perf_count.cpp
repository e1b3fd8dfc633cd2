#include "perf_count.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <stdexcept>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "temp_dir.hpp"

namespace lonc::bench {
namespace {

const char* perf_path() {
    for (const char* p : {"/usr/bin/perf", "/usr/local/bin/perf"}) {
        if (::access(p, X_OK) == 0) {
            return p;
        }
    }
    return nullptr;
}

} // namespace

bool PerfCount::available() {
    return perf_path() != nullptr;
}

PerfCount::PerfCount(const std::vector<std::string>& events, const std::vector<pid_t>& pids,
                     const std::filesystem::path& dir)
    : dir_(dir) {
    const char* perf = perf_path();
    if (perf == nullptr) {
        throw std::runtime_error("perf is not installed");
    }
    const auto ctl = dir / "perf.ctl";
    const auto ack = dir / "perf.ack";
    std::filesystem::remove(ctl);
    std::filesystem::remove(ack);
    if (::mkfifo(ctl.c_str(), 0600) != 0 || ::mkfifo(ack.c_str(), 0600) != 0) {
        throw std::runtime_error(std::string("mkfifo: ") + std::strerror(errno));
    }
    std::string ev;
    for (const auto& e : events) {
        ev += (ev.empty() ? "" : ",") + e;
    }
    std::string p;
    for (const auto pid : pids) {
        p += (p.empty() ? "" : ",") + std::to_string(pid);
    }
    test::SpawnOptions so;
    so.stderr_file = (dir / "perf.err").string();
    perf_ = test::Process::spawn({perf, "stat", "-x", ",", "-e", ev, "-D", "-1", "--control",
                                  "fifo:" + ctl.string() + "," + ack.string(), "-p", p, "-o",
                                  (dir / "perf.out").string()},
                                 so);
    // The FIFOs open once perf has opened its ends: that is "perf is up".
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ctl_ < 0 && std::chrono::steady_clock::now() < deadline && perf_.running()) {
        ctl_ = ::open(ctl.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (ctl_ < 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    ack_ = ::open(ack.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (ctl_ < 0 || ack_ < 0) {
        throw std::runtime_error("perf stat did not start: " + test::slurp(so.stderr_file));
    }
}

PerfCount::~PerfCount() {
    if (ctl_ >= 0) {
        ::close(ctl_);
    }
    if (ack_ >= 0) {
        ::close(ack_);
    }
}

void PerfCount::command(const char* what) {
    const std::string line = std::string(what) + "\n";
    if (::write(ctl_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        throw std::runtime_error("perf control: write failed");
    }
    // Wait for perf's "ack\n".
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (got.find('\n') == std::string::npos) {
        if (std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error(std::string("perf did not acknowledge ") + what);
        }
        pollfd p{ack_, POLLIN, 0};
        ::poll(&p, 1, 100);
        char buf[16];
        const auto n = ::read(ack_, buf, sizeof buf);
        if (n > 0) {
            got.append(buf, static_cast<std::size_t>(n));
        }
    }
}

void PerfCount::enable() {
    command("enable");
}

void PerfCount::disable() {
    command("disable");
}

std::map<std::string, double> PerfCount::finish() {
    perf_.signal(SIGINT);
    if (!perf_.wait(std::chrono::seconds(30))) {
        perf_.kill();
    }
    std::map<std::string, double> out;
    std::ifstream in(dir_ / "perf.out");
    std::string line;
    while (std::getline(in, line)) {
        // count,unit,event,...
        const auto c1 = line.find(',');
        const auto c2 = c1 == std::string::npos ? c1 : line.find(',', c1 + 1);
        const auto c3 = c2 == std::string::npos ? c2 : line.find(',', c2 + 1);
        if (c3 == std::string::npos || line.empty() || line[0] == '#') {
            continue;
        }
        try {
            out[line.substr(c2 + 1, c3 - c2 - 1)] = std::stod(line.substr(0, c1));
        } catch (const std::exception&) {
        }
    }
    return out;
}

} // namespace lonc::bench
