#include "temp_dir.hpp"

#include <cstdlib>
#include <fstream>
#include <pwd.h>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace lonc::test {

TempDir::TempDir(std::string_view prefix) {
    std::string tmpl = "/tmp/" + std::string(prefix) + ".XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
        throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    path_ = tmpl;
    // Daemons under test may run as another user: let them traverse.
    ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
    if (std::getenv("LONC_TEST_KEEP") != nullptr) {
        return; // for debugging a failed test by hand
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void TempDir::write(std::string_view rel, std::string_view text) const {
    const auto p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out) {
        throw std::runtime_error("cannot write " + p.string());
    }
}

std::filesystem::path TempDir::make_dir(std::string_view rel, std::string_view user,
                                        unsigned mode) const {
    const auto p = path_ / rel;
    std::filesystem::create_directories(p);
    ::chmod(p.c_str(), static_cast<mode_t>(mode));
    if (!user.empty() && ::geteuid() == 0) {
        if (const auto* pw = ::getpwnam(std::string(user).c_str())) {
            if (::chown(p.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
                throw std::system_error(errno, std::generic_category(), "chown " + p.string());
            }
        }
    }
    return p;
}

std::string slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace lonc::test
