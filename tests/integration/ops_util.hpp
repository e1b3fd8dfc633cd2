// Helpers for the operations tests (unit, notify, logs, install, package):
// run a shell command and look at its output, find the source and build
// trees, spawn lonc with an environment of our own.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "cluster.hpp"

namespace lonc::test {

[[nodiscard]] inline std::filesystem::path source_dir() {
    return LONC_SOURCE_DIR;
}
[[nodiscard]] inline std::filesystem::path build_dir() {
    return LONC_BUILD_DIR;
}

// The package (ext: deb, rpm) that dpkg-buildpackage or rpmbuild made from
// the release tarball: the ctest fixture lonc_packages
// (build_packages.sh) puts it in <build>/packages. Empty, with a failure
// that says so, when there is none.
[[nodiscard]] inline std::filesystem::path built_package(const std::string& ext) {
    const auto dir = build_dir() / "packages";
    if (std::filesystem::is_directory(dir)) {
        for (const auto& e : std::filesystem::directory_iterator(dir)) {
            const auto name = e.path().filename().string();
            if (e.path().extension() == "." + ext && name.rfind("lonc", 0) == 0 &&
                name.find("dbgsym") == std::string::npos) {
                return e.path();
            }
        }
    }
    ADD_FAILURE() << "no ." << ext << " in " << dir
                  << ": ctest builds it first (fixture lonc_packages: "
                     "tests/integration/build_packages.sh)";
    return {};
}

// '...' for sh, with embedded quotes escaped.
[[nodiscard]] inline std::string quote(const std::string& s) {
    std::string out = "'";
    for (const char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

struct CommandResult {
    int code = -1;   // exit code, or -1 if killed
    std::string out; // stdout and stderr together
};

// Runs cmd with sh -c, stdout and stderr captured together.
inline CommandResult run(const std::string& cmd) {
    CommandResult r;
    std::FILE* p = ::popen(("(" + cmd + ") 2>&1").c_str(), "r");
    if (p == nullptr) {
        return r;
    }
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
        r.out.append(buf, n);
    }
    const int st = ::pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

[[nodiscard]] inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

// Long option names ("config", "log-level", ...) listed by a CLI11 --help.
[[nodiscard]] inline std::set<std::string> long_options(const std::string& help) {
    std::set<std::string> out;
    const std::regex re(R"(^\s+(?:-\w,)?--([a-z][a-z0-9-]*))");
    for (const auto& line : lines_of(help)) {
        std::smatch m;
        if (std::regex_search(line, m, re)) {
            out.insert(m[1].str());
        }
    }
    return out;
}

// A file's text with every occurrence of from replaced by to; fails the
// test if from does not occur.
[[nodiscard]] inline std::string replaced(std::string text, const std::string& from,
                                          const std::string& to) {
    bool any = false;
    for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
        text.replace(pos, from.size(), to);
        pos += to.size();
        any = true;
    }
    EXPECT_TRUE(any) << "'" << from << "' not found";
    return text;
}

} // namespace lonc::test
