#include "lonc/supervisor/spool_watch.hpp"

#include "lonc/core/spool.hpp"
#include "lonc/runtime/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/inotify.h>
#include <system_error>
#include <unistd.h>

namespace lonc {

SpoolWatch::SpoolWatch(EventLoop& loop, std::filesystem::path dir, Hint hint)
    : loop_(loop), dir_(std::move(dir)), hint_(std::move(hint)) {}

SpoolWatch::~SpoolWatch() {
    if (fd_) {
        loop_.remove(fd_.get(), *this);
    }
}

bool SpoolWatch::start() {
    if (fd_) {
        return true;
    }
    auto& lg = log::get("supervisor");
    UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd) {
        lg.warn("inotify: {}; delayed messages are found by rescans only", std::strerror(errno));
        return false;
    }
    if (::inotify_add_watch(fd.get(), dir_.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        lg.warn("Cannot watch {}: {}; delayed messages are found by rescans only", dir_.string(),
                std::strerror(errno));
        return false;
    }
    fd_ = std::move(fd);
    loop_.add(fd_.get(), EPOLLIN, *this);
    return true;
}

void SpoolWatch::on_events(std::uint32_t /*events*/) {
    alignas(inotify_event) char buf[16384];
    for (;;) {
        const auto n = ::read(fd_.get(), buf, sizeof buf);
        if (n <= 0) {
            return;
        }
        for (std::size_t off = 0; off + sizeof(inotify_event) <= static_cast<std::size_t>(n);) {
            const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
            off += sizeof(inotify_event) + ev->len;
            if ((ev->mask & IN_Q_OVERFLOW) != 0) {
                hint_("", "*");
                continue;
            }
            if (ev->len == 0) {
                continue;
            }
            const std::string_view name(ev->name);
            if (const auto parsed = parse_spool_name(name)) {
                hint_(parsed->host, name);
            }
        }
    }
}

std::map<std::string, std::vector<std::string>> spool_files_of(const std::filesystem::path& dir,
                                                               const std::set<std::string>& hosts) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& e : list_spool(dir).value_or(std::vector<SpoolEntry>{})) {
        if (e.kind == SpoolKind::pending && hosts.count(e.host) != 0) {
            out[e.host].push_back(e.name);
        }
    }
    for (auto& [host, names] : out) {
        std::sort(names.begin(), names.end());
    }
    return out;
}

} // namespace lonc
