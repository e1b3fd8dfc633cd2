// File descriptors: UniqueFd owns one (closes it), a plain int is a view.
// UniqueDir and UniqueFile own a directory stream and a stdio stream.
//
// Every descriptor lonc opens has one of these as its owner. A bare close()
// is left only where no destructor may run: after fork, before exec or
// _exit (and close_range(2) for "everything but these").
#pragma once

#include <cstdio>
#include <dirent.h>
#include <memory>
#include <unistd.h>
#include <utility>

namespace lonc {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    // Closes now and reports how that went (0, or -1 and errno): for a
    // file whose close(2) may still report a failed write (a full disk).
    int close() noexcept { return fd_ < 0 ? 0 : ::close(std::exchange(fd_, -1)); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

struct DirCloser {
    void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

struct FileCloser {
    void operator()(std::FILE* f) const noexcept { (void)std::fclose(f); }
};
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

} // namespace lonc
