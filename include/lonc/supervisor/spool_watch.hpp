// The supervisor's side of lonSockDir/delayed/: an inotify watch that names
// each delayed message as lonnet finishes writing it (close-write, or
// renamed in), so that the child of its host looks at it at once, and the
// listing of the pending files of given hosts (removed peers' messages,
// named in a warning and in the status files).
#pragma once

#include "lonc/core/fd.hpp"
#include "lonc/runtime/event_loop.hpp"

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lonc {

class SpoolWatch final : public EventLoop::Watcher {
public:
    // hint(host, name): name, a file for host, appeared. hint("", "*"): the
    // kernel's queue overflowed; every host should look at everything.
    using Hint = std::function<void(std::string_view host, std::string_view name)>;

    SpoolWatch(EventLoop& loop, std::filesystem::path dir, Hint hint);
    ~SpoolWatch();
    SpoolWatch(const SpoolWatch&) = delete;
    SpoolWatch& operator=(const SpoolWatch&) = delete;

    // Watches dir; false (and a warning logged) if it cannot: delayed
    // messages are then found by the children's rescans only.
    bool start();
    [[nodiscard]] bool watching() const noexcept { return static_cast<bool>(fd_); }

    void on_events(std::uint32_t events) override;

private:
    EventLoop& loop_;
    std::filesystem::path dir_;
    Hint hint_;
    UniqueFd fd_;
};

// The pending delayed/ files of these hosts, by host, sorted (".bad" ones
// are set aside already and not listed).
[[nodiscard]] std::map<std::string, std::vector<std::string>>
spool_files_of(const std::filesystem::path& dir, const std::set<std::string>& hosts);

} // namespace lonc
