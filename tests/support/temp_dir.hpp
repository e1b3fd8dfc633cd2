// A scratch directory for one test, removed with everything in it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace lonc::test {

class TempDir {
public:
    explicit TempDir(std::string_view prefix = "lonc-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] std::filesystem::path operator/(std::string_view rel) const {
        return path_ / rel;
    }

    // Writes (replaces) a file below the directory, creating parent dirs.
    void write(std::string_view rel, std::string_view text) const;
    // Creates a directory below this one, owned by user (when running as
    // root and the user exists) so an unprivileged daemon can write there.
    std::filesystem::path make_dir(std::string_view rel, std::string_view user = {},
                                   unsigned mode = 0755) const;

private:
    std::filesystem::path path_;
};

// Reads a whole file ("" when missing).
[[nodiscard]] std::string slurp(const std::filesystem::path& path);

} // namespace lonc::test
