#include "proc_stats.hpp"

#include <charconv>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <sstream>
#include <string_view>
#include <sys/resource.h>
#include <unistd.h>

namespace lonc::test {
namespace {

std::string proc(pid_t pid, const char* what) {
    return "/proc/" + std::to_string(pid) + "/" + what;
}

// Reads a small /proc file with one read (they are generated on read).
std::string read_proc(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return {};
    }
    std::string out(4096, '\0');
    std::size_t len = 0;
    for (;;) {
        if (len == out.size()) {
            out.resize(out.size() * 2);
        }
        const auto n = ::read(fd, out.data() + len, out.size() - len);
        if (n <= 0) {
            break;
        }
        len += static_cast<std::size_t>(n);
    }
    ::close(fd);
    out.resize(len);
    return out;
}

std::uint64_t to_u64(std::string_view s) {
    std::uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

// Field n (1-based, as in proc(5)) of a stat line, counted after the
// command name, which may hold spaces.
std::string_view stat_field(std::string_view line, int n) {
    const auto close = line.rfind(')');
    if (close == std::string_view::npos) {
        return {};
    }
    std::string_view rest = line.substr(close + 2); // field 3 onwards
    for (int i = 3; i < n; ++i) {
        const auto sp = rest.find(' ');
        if (sp == std::string_view::npos) {
            return {};
        }
        rest.remove_prefix(sp + 1);
    }
    return rest.substr(0, rest.find(' '));
}

std::uint64_t status_value(std::string_view text, std::string_view key) {
    const auto at = text.find(key);
    if (at == std::string_view::npos) {
        return 0;
    }
    auto rest = text.substr(at + key.size());
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t' || rest.front() == ':')) {
        rest.remove_prefix(1);
    }
    return to_u64(rest.substr(0, rest.find_first_not_of("0123456789")));
}

} // namespace

std::optional<std::string> status_field(pid_t pid, const std::string& name) {
    std::istringstream in(read_proc(proc(pid, "status")));
    std::string line;
    const auto key = name + ":";
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0) {
            const auto start = line.find_first_not_of(" \t", key.size());
            return start == std::string::npos ? std::string() : line.substr(start);
        }
    }
    return std::nullopt;
}

std::vector<long> status_numbers(pid_t pid, const std::string& name) {
    std::vector<long> out;
    if (const auto v = status_field(pid, name)) {
        std::istringstream ss(*v);
        long n = 0;
        while (ss >> n) {
            out.push_back(n);
        }
    }
    return out;
}

long rss_kib(pid_t pid) {
    const auto v = status_numbers(pid, "VmRSS");
    return v.empty() ? 0 : v[0];
}

int fd_count(pid_t pid) {
    DIR* d = ::opendir(proc(pid, "fd").c_str());
    if (d == nullptr) {
        return -1;
    }
    int n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    ::closedir(d);
    return n;
}

double cpu_seconds(pid_t pid) {
    const auto stat = read_proc(proc(pid, "stat"));
    if (stat.empty()) {
        return -1;
    }
    const auto ticks = to_u64(stat_field(stat, 14)) + to_u64(stat_field(stat, 15));
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::pair<long, long> nofile_limits(pid_t pid) {
    std::istringstream in(read_proc(proc(pid, "limits")));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Max open files", 0) == 0) {
            std::istringstream ss(line.substr(14));
            long soft = -1;
            long hard = -1;
            ss >> soft >> hard;
            return {soft, hard};
        }
    }
    return {-1, -1};
}

ProcSample sample(const std::vector<pid_t>& pids) {
    ProcSample s;
    for (const pid_t pid : pids) {
        const auto base = "/proc/" + std::to_string(pid);
        const auto stat = read_proc(base + "/stat");
        if (stat.empty()) {
            continue;
        }
        s.cpu_ticks += to_u64(stat_field(stat, 14)) + to_u64(stat_field(stat, 15));
        const auto status = read_proc(base + "/status");
        s.voluntary_cs += status_value(status, "\nvoluntary_ctxt_switches");
        s.involuntary_cs += status_value(status, "\nnonvoluntary_ctxt_switches");
        ++s.processes;
    }
    return s;
}

double tick_us() {
    return 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) {
        return out;
    }
    while (const dirent* e = ::readdir(d)) {
        const auto pid = static_cast<pid_t>(std::atol(e->d_name));
        if (pid <= 0) {
            continue;
        }
        const auto stat = read_proc(proc(pid, "stat"));
        const auto state = stat_field(stat, 3);
        if (static_cast<pid_t>(to_u64(stat_field(stat, 4))) == parent && state != "Z") {
            out.push_back(pid);
        }
    }
    ::closedir(d);
    return out;
}

std::vector<pid_t> tree(pid_t parent) {
    auto out = children_of(parent);
    out.insert(out.begin(), parent);
    return out;
}

std::optional<Memory> memory(pid_t pid) {
    const auto text = read_proc(proc(pid, "smaps_rollup"));
    if (text.empty()) {
        return std::nullopt;
    }
    Memory m;
    m.pss_kib = status_value(text, "\nPss:");
    m.private_dirty_kib = status_value(text, "\nPrivate_Dirty:");
    m.rss_kib = status_value(text, "\nRss:");
    return m;
}

std::uint64_t run_ns(pid_t pid) {
    const auto text = read_proc(proc(pid, "schedstat"));
    return to_u64(std::string_view(text).substr(0, text.find(' ')));
}

std::uint64_t minor_faults(pid_t pid) {
    return to_u64(stat_field(read_proc(proc(pid, "stat")), 10));
}

std::uint64_t self_cpu_us() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const auto us = [](const timeval& tv) {
        return static_cast<std::uint64_t>(tv.tv_sec) * 1000000U +
               static_cast<std::uint64_t>(tv.tv_usec);
    };
    return us(ru.ru_utime) + us(ru.ru_stime);
}

} // namespace lonc::test
