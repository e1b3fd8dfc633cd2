#include "proc_stats.hpp"

#include <dirent.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace lonc::test {

namespace {
std::string proc(pid_t pid, const char* what) {
    return "/proc/" + std::to_string(pid) + "/" + what;
}
} // namespace

std::optional<std::string> status_field(pid_t pid, const std::string& name) {
    std::ifstream in(proc(pid, "status"));
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
    std::ifstream in(proc(pid, "stat"));
    std::string line;
    if (!std::getline(in, line)) {
        return -1;
    }
    const auto close = line.rfind(')');
    if (close == std::string::npos) {
        return -1;
    }
    // Fields after the command: state is field 3; utime and stime are 14, 15.
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14 || i == 15) {
            ticks += std::stod(field);
        }
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::pair<long, long> nofile_limits(pid_t pid) {
    std::ifstream in(proc(pid, "limits"));
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

} // namespace lonc::test
