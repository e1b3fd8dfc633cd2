#include "lonc/spooler.hpp"

#include "lonc/log.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lonc {
namespace {

spdlog::logger& lg() {
    return log::get("spool");
}

constexpr std::string_view sent_suffix = ".sent";
// How far back in lonnet.perm.log to look for a record a crash may have
// written already.
constexpr off_t perm_log_window = 8 * 1024 * 1024;

// Failures that say nothing about the file: this process is out of
// descriptors or memory for a moment. Such a file is never set aside.
bool transient_error(int e) {
    return e == EMFILE || e == ENFILE || e == ENOMEM || e == EINTR;
}

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

// True when lonnet.perm.log has an S line for host:cmd written at or after
// `since` (epoch seconds): the record of a delivery a crash interrupted.
bool perm_log_has(const std::filesystem::path& file, const std::string& host,
                  const std::string& cmd, std::time_t since) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    struct stat st {};
    std::string data;
    if (::fstat(fd, &st) == 0) {
        const off_t from = st.st_size > perm_log_window ? st.st_size - perm_log_window : 0;
        data.resize(static_cast<std::size_t>(st.st_size - from));
        const auto n = ::pread(fd, data.data(), data.size(), from);
        data.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    ::close(fd);
    const std::string needle = ":S:" + host + ":" + cmd + ":";
    for (auto pos = data.find(needle); pos != std::string::npos; pos = data.find(needle, pos + 1)) {
        const auto bol = data.rfind('\n', pos);
        const auto start = bol == std::string::npos ? 0 : bol + 1;
        const auto when = std::strtoll(data.c_str() + start, nullptr, 10);
        if (when >= since - 1) {
            return true;
        }
    }
    return false;
}

} // namespace

Spooler::Spooler(EventLoop& loop, const Settings& settings, std::string host, const Options& opts,
                 Enqueue enqueue)
    : loop_(loop), settings_(settings), host_(std::move(host)), opts_(opts),
      enqueue_(std::move(enqueue)), rescan_(loop, [this] {
          if (active_) {
              scan();
          }
      }) {}

std::uint64_t Spooler::oldest() const noexcept {
    std::uint64_t oldest = files_.empty() ? 0 : files_.begin()->epoch;
    if (const auto n = parse_spool_name(inflight_); n && (oldest == 0 || n->epoch < oldest)) {
        oldest = n->epoch;
    }
    return oldest;
}

void Spooler::start() {
    active_ = true;
    scan();
}

void Spooler::stop() {
    active_ = false;
    rescan_.cancel();
    files_.clear();
}

void Spooler::hint(std::string_view name) {
    if (!active_) {
        return;
    }
    if (name == "*") {
        scan();
        return;
    }
    const auto parsed = parse_spool_name(name);
    if (!parsed || parsed->host != host_ || name == inflight_) {
        return;
    }
    files_.insert(SpoolEntry{std::string(name), parsed->epoch});
    next();
}

// One process per host delivers: the lock is held for the child's life.
bool Spooler::take_lock() {
    if (lock_ || unlocked_) {
        return true;
    }
    const auto dir = settings_.sock_dir / ".lonc-spool";
    ::mkdir(dir.c_str(), 0700);
    const auto file = dir / (host_ + ".lock");
    UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) {
        if (!lock_warned_) {
            lg().warn("Cannot open {}: {}; delivering delayed messages without it", file.string(),
                      std::strerror(errno));
            lock_warned_ = true;
        }
        unlocked_ = true;
        return true;
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (!lock_warned_) {
            lg().warn("Another lonc process is delivering {}'s delayed messages; waiting for it",
                      host_);
            lock_warned_ = true;
        }
        return false;
    }
    if (lock_warned_) {
        lg().info("INFO: delivering {}'s delayed messages now", host_);
    }
    lock_ = std::move(fd);
    return true;
}

void Spooler::scan() {
    rescan_.arm_in(seconds(opts_.spool_rescan));
    if (!take_lock()) {
        return;
    }
    files_.clear();
    DIR* d = ::opendir(settings_.spool_dir().c_str());
    if (d == nullptr) {
        return;
    }
    std::vector<std::string> markers;
    while (const dirent* e = ::readdir(d)) {
        const std::string_view name = e->d_name;
        if (name.size() > sent_suffix.size() &&
            name.substr(name.size() - sent_suffix.size()) == sent_suffix) {
            const auto base = name.substr(0, name.size() - sent_suffix.size());
            if (const auto p = parse_spool_name(base); p && p->host == host_) {
                markers.emplace_back(name);
            }
            continue;
        }
        if (const auto p = parse_spool_name(name); p && p->host == host_ && name != inflight_) {
            files_.insert(SpoolEntry{std::string(name), p->epoch});
        }
    }
    ::closedir(d);
    for (const auto& m : markers) {
        finish_record(m);
    }
    next();
}

void Spooler::next() {
    if (!active_ || !inflight_.empty() || (!lock_ && !unlocked_)) {
        return;
    }
    while (!files_.empty()) {
        const auto entry = *files_.begin();
        files_.erase(files_.begin());
        auto file = read_spool_file(path(entry.name), opts_.max_line);
        if (file.result == SpoolRead::ok) {
            inflight_ = entry.name;
            req_.kind = Request::Kind::spool;
            req_.line = std::move(file.line);
            req_.arrived = loop_.now();
            req_.deadline = req_.arrived + seconds(opts_.request_timeout);
            req_.client = nullptr;
            enqueue_(req_);
            return;
        }
        if (file.result == SpoolRead::missing) {
            continue; // gone meanwhile
        }
        if (file.result == SpoolRead::unreadable && transient_error(file.error)) {
            continue; // our trouble, not the file's: the next scan tries again
        }
        // Possibly still being written: judge it only once it stopped changing.
        const auto age = std::difftime(std::time(nullptr), file.mtime);
        if (file.mtime != 0 && age < opts_.spool_bad_age) {
            continue; // a hint or the next scan brings it back
        }
        set_aside(entry.name, file);
    }
}

bool Spooler::set_aside(const std::string& name, const SpoolFile& file) {
    const auto from = path(name);
    const auto to = from.string() + ".bad";
    const std::string why =
        std::string(to_string(file.result)) +
        (file.error != 0 ? std::string(" (") + std::strerror(file.error) + ")" : "");
    if (::rename(from.c_str(), to.c_str()) != 0) {
        lg().warn("Delayed message {} is {} and cannot be set aside: {}", name, why,
                  std::strerror(errno));
        return false;
    }
    ++stats_.bad;
    lg().warn("Delayed message {} is {}: set aside as {}", name, why, to);
    return true;
}

void Spooler::done(std::optional<std::string_view> reply) {
    const auto name = std::move(inflight_);
    inflight_.clear();
    if (!reply) {
        // con_lost or timeout: the file stays and goes out again first.
        if (const auto p = parse_spool_name(name); p && active_) {
            files_.insert(SpoolEntry{name, p->epoch});
        }
        next();
        return;
    }
    if (reply->empty()) {
        // Not delivered either; the next scan tries it again (no hot loop).
        lg().warn("Delayed message {} got an empty answer; it stays", name);
        next();
        return;
    }
    const auto marker = path(name).string() + std::string(sent_suffix);
    if (::rename(path(name).c_str(), marker.c_str()) != 0) {
        lg().warn("Delayed message {} was delivered but cannot be marked: {}", name,
                  std::strerror(errno));
        next();
        return;
    }
    ++stats_.delivered;
    const auto text = *reply;
    const bool refused = starts_with(text, "refused") || starts_with(text, "rejected") ||
                         starts_with(text, "error") || starts_with(text, "unknown_cmd");
    if (refused) {
        ++stats_.refused;
        lg().warn("Delayed message {} was answered >{}< (counted as delivered)", name,
                  log::printable(text));
    } else {
        lg().info("Delayed {}: >{}<", log::redact(req_.line), log::printable(text));
    }
    if (log::perm(settings_.perm_log_file(), "S:" + host_ + ":" + req_.line)) {
        ::unlink(marker.c_str());
    } else {
        lg().error("Cannot append to {}: {}; the record is written at the next pass",
                   settings_.perm_log_file().string(), std::strerror(errno));
    }
    next();
}

// A delivery whose record a crash (or a full disk) interrupted: write the
// S line unless it made it to lonnet.perm.log, then drop the marker.
void Spooler::finish_record(const std::string& marker) {
    const auto p = path(marker);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        return;
    }
    const auto file = read_spool_file(p, opts_.max_line);
    if (file.result != SpoolRead::ok) {
        ::unlink(p.c_str());
        return;
    }
    if (!perm_log_has(settings_.perm_log_file(), host_, file.line, st.st_ctime)) {
        if (!log::perm(settings_.perm_log_file(), "S:" + host_ + ":" + file.line)) {
            return; // still no room: next pass
        }
        lg().info("INFO: completed the delivery record of {}", marker);
    }
    ::unlink(p.c_str());
}

} // namespace lonc
