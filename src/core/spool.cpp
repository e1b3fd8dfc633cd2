#include "lonc/core/spool.hpp"

#include "lonc/core/config.hpp"
#include "lonc/core/control_words.hpp"
#include "lonc/core/fd.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lonc {

std::optional<SpoolName> parse_spool_name(std::string_view name) noexcept {
    if (name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
        return std::nullopt; // not one file name
    }
    const auto d1 = name.find('.');
    if (d1 == std::string_view::npos || d1 == 0) {
        return std::nullopt;
    }
    const auto d2 = name.find('.', d1 + 1);
    if (d2 == std::string_view::npos) {
        return std::nullopt;
    }
    SpoolName out;
    const auto epoch = name.substr(0, d1);
    for (const char c : epoch) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
    }
    const auto [p, ec] = std::from_chars(epoch.data(), epoch.data() + epoch.size(), out.epoch);
    if (ec != std::errc{} || p != epoch.data() + epoch.size()) {
        return std::nullopt;
    }
    out.middle = name.substr(d1 + 1, d2 - d1 - 1);
    out.host = name.substr(d2 + 1);
    // "<name>.bad" (set aside) and "<name>.sent" (delivered, record being
    // written) parse with host "<host>.bad": no valid host id ends so.
    if (!valid_host_id(out.host)) {
        return std::nullopt;
    }
    return out;
}

std::string_view SpoolEntry::base() const noexcept {
    const std::string_view n = name;
    switch (kind) {
    case SpoolKind::bad:
        return n.substr(0, n.size() - bad_suffix.size());
    case SpoolKind::sent:
        return n.substr(0, n.size() - sent_suffix.size());
    case SpoolKind::pending:
        break;
    }
    return n;
}

std::optional<SpoolEntry> spool_entry(std::string_view name) {
    SpoolKind kind = SpoolKind::pending;
    std::string_view base = name;
    auto ends_with = [&](std::string_view suffix) {
        return base.size() > suffix.size() && base.substr(base.size() - suffix.size()) == suffix;
    };
    if (ends_with(bad_suffix)) {
        kind = SpoolKind::bad;
        base.remove_suffix(bad_suffix.size());
    } else if (ends_with(sent_suffix)) {
        kind = SpoolKind::sent;
        base.remove_suffix(sent_suffix.size());
    }
    const auto parsed = parse_spool_name(base);
    if (!parsed) {
        return std::nullopt;
    }
    return SpoolEntry{std::string(name), std::string(parsed->host), parsed->epoch, kind};
}

std::optional<std::vector<SpoolEntry>> list_spool(const std::filesystem::path& dir) {
    const UniqueDir d(::opendir(dir.c_str()));
    if (!d) {
        return std::nullopt;
    }
    std::vector<SpoolEntry> out;
    errno = 0;
    while (const dirent* e = ::readdir(d.get())) {
        if (auto entry = spool_entry(e->d_name)) {
            out.push_back(std::move(*entry));
        }
    }
    return out;
}

bool SpoolStamp::same_content(const SpoolStamp& o) const noexcept {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec;
}

SpoolStamp stamp_of(const struct stat& st) noexcept {
    return SpoolStamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

double spool_age(const SpoolStamp& s, timespec now) noexcept {
    auto secs = [](const timespec& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
    };
    const double changed = std::max(secs(s.mtime), secs(s.ctime));
    return std::max(0.0, secs(now) - changed);
}

const char* to_string(SpoolRead r) noexcept {
    switch (r) {
    case SpoolRead::ok:
        return "ok";
    case SpoolRead::missing:
        return "missing";
    case SpoolRead::empty:
        return "empty";
    case SpoolRead::no_newline:
        return "no newline-terminated first line";
    case SpoolRead::too_long:
        return "first line longer than --spool-max-line";
    case SpoolRead::unreadable:
        return "unreadable";
    }
    return "?";
}

SpoolFile read_spool_file(const std::filesystem::path& path, std::size_t max_line) {
    SpoolFile f;
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) == 0) {
        f.mtime = lst.st_mtime; // known even when the file cannot be opened
    }
    const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd) {
        f.error = errno;
        f.result = errno == ENOENT ? SpoolRead::missing : SpoolRead::unreadable;
        return f;
    }
    struct stat st {};
    const bool stat_ok = ::fstat(fd.get(), &st) == 0;
    if (!stat_ok || !S_ISREG(st.st_mode)) {
        f.error = stat_ok ? 0 : errno; // not a regular file: no errno (a stale one would lie)
        f.result = SpoolRead::unreadable;
        return f;
    }
    f.mtime = st.st_mtime;
    f.stamp = stamp_of(st);
    std::string data;
    char chunk[8192];
    bool eof = false;
    // To the end (within the limit): the bytes must add up to the stamp's size.
    while (data.size() <= max_line) {
        const auto want = std::min(sizeof chunk, max_line + 1 - data.size());
        const auto n = ::read(fd.get(), chunk, want);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            f.error = errno;
            f.result = SpoolRead::unreadable;
            return f;
        }
        if (n == 0) {
            eof = true;
            break;
        }
        data.append(chunk, static_cast<std::size_t>(n));
    }
    // lonnet rewrites with a truncating open: one between the fstat and the
    // read would pair the new bytes with the old stamp. File times are
    // coarse (two rewrites in one tick look alike), so the sizes must agree too.
    struct stat after {};
    const auto size = static_cast<std::size_t>(st.st_size);
    f.changed = ::fstat(fd.get(), &after) != 0 || !(stamp_of(after) == f.stamp) ||
                data.size() > size || (eof && data.size() != size);
    f.result = parse_spool_bytes(data, eof, max_line, f.line);
    return f;
}

SpoolRead parse_spool_bytes(std::string_view data, bool eof, std::size_t max_line,
                            std::string& line) {
    const auto nl = data.find('\n');
    if (nl != std::string_view::npos) {
        if (nl > max_line) {
            return SpoolRead::too_long;
        }
        line.assign(data.substr(0, nl));
        return SpoolRead::ok;
    }
    if (data.size() > max_line) {
        return SpoolRead::too_long;
    }
    if (!eof) {
        return SpoolRead::unreadable; // a read stopped short without EOF: cannot happen
    }
    return data.empty() ? SpoolRead::empty : SpoolRead::no_newline;
}

} // namespace lonc
