#include "lonc/supervisor/status.hpp"

#include "lonc/core/clock_text.hpp"
#include "lonc/core/control_words.hpp"
#include "lonc/core/fd.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace lonc {
namespace {

// Tabs and newlines would break the line format.
std::string one_field(std::string s) {
    for (auto& c : s) {
        if (c == '\t' || c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    return s;
}

} // namespace

std::string format_status_txt(const StatusReport& r) {
    std::string out = "LONC status " + perl_localtime(r.time) + " - parent " +
                      std::to_string(r.parent_pid) + "\n\n";
    out += std::to_string(r.parent_pid) + "\tPARENT\t" + one_field(r.parent_status) + "\t" +
           one_field(r.parent_last_log) + "\n";
    for (const auto& p : r.peers) {
        if (p.pid <= 0) {
            continue;
        }
        const auto status =
            p.answered ? p.report.status : perl_localtime(r.time) + ": no answer to status request";
        out += std::to_string(p.pid) + "\t" + p.id + "\t" + one_field(status) + "\t" +
               one_field(p.report.last_log) + "\n";
    }
    for (const auto& [host, files] : r.reload.undeliverable) {
        std::string names;
        for (const auto& f : files) {
            names += (names.empty() ? "" : " ") + f;
        }
        out += "-\t" + host + "\t" + perl_localtime(r.time) + ": removed from hosts.tab; " +
               std::to_string(files.size()) + " delayed message" + (files.size() == 1 ? "" : "s") +
               " can no longer be delivered\t" + one_field(names) + "\n";
    }
    return out;
}

std::string format_status_json(const StatusReport& r) {
    using nlohmann::json;
    json peers = json::array();
    for (const auto& p : r.peers) {
        namespace k = status_key;
        json j = {{k::id, p.id}, {k::state, p.state}, {k::answered, p.answered}};
        j[k::pid] = p.pid > 0 ? json(p.pid) : json(nullptr);
        if (p.answered) {
            add_to_json(p.report, j);
            const auto age = spool_oldest_age(p, r.time);
            j[k::spool_oldest_age] = age ? json(*age) : json(nullptr);
        }
        peers.push_back(std::move(j));
    }
    json undeliverable = json::object();
    for (const auto& [host, files] : r.reload.undeliverable) {
        undeliverable[host] = files;
    }
    namespace k = status_key;
    const json doc = {
        {k::schema, status_json_schema},
        {k::generation, r.generation},
        {k::time, static_cast<std::int64_t>(r.time)},
        {k::parent,
         {{k::pid, r.parent_pid}, {k::status, r.parent_status}, {k::last_log, r.parent_last_log}}},
        {k::peers, std::move(peers)},
        {k::reload,
         {{k::time, static_cast<std::int64_t>(r.reload.time)},
          {k::success, r.reload.success},
          {k::last_success, static_cast<std::int64_t>(r.reload.last_success)},
          {k::result, r.reload.result},
          {k::undeliverable, std::move(undeliverable)}}}};
    // Replace invalid UTF-8 (peer data can hold anything) rather than throw.
    return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::optional<std::int64_t> spool_oldest_age(const PeerStatus& peer, std::time_t now) {
    // the child's: epoch seconds
    const auto oldest = static_cast<std::int64_t>(peer.report.spool_oldest);
    if (!peer.answered || oldest <= 0) {
        return std::nullopt;
    }
    return std::max<std::int64_t>(0, static_cast<std::int64_t>(now) - oldest);
}

bool write_file_atomic(const std::filesystem::path& path, std::string_view content,
                       std::string& error) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    const auto tmp = path.string() + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) {
        error = "cannot create " + tmp + ": " + std::strerror(errno);
        return false;
    }
    const auto n = ::write(fd.get(), content.data(), content.size());
    const int write_errno = errno;
    if (fd.close() != 0 || n != static_cast<ssize_t>(content.size())) {
        error = "cannot write " + tmp + ": " +
                std::strerror(n < 0 ? write_errno : (errno != 0 ? errno : ENOSPC));
        ::unlink(tmp.c_str());
        return false;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        error = "cannot rename " + tmp + " to " + path.string() + ": " + std::strerror(errno);
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

std::string parent_summary(const std::vector<PeerStatus>& peers) {
    std::size_t running = 0;
    std::size_t up = 0;
    std::size_t unreachable = 0;
    std::size_t skipped = 0;
    for (const auto& p : peers) {
        const auto state = parse_slot_state(p.state);
        running += state == SlotState::running ? 1U : 0U;
        up += p.link_up ? 1U : 0U;
        unreachable += state == SlotState::unreachable ? 1U : 0U;
        skipped += state == SlotState::skipped ? 1U : 0U;
    }
    return "Sleeping: " + std::to_string(peers.size()) + " peers, " + std::to_string(running) +
           " children, " + std::to_string(up) + " links up, " + std::to_string(unreachable) +
           " unreachable, " + std::to_string(skipped) + " skipped";
}

bool write_status_files(const std::filesystem::path& dir, const StatusReport& report,
                        const std::string& json, std::string& error) {
    return write_file_atomic(dir / "loncstatus.json", json, error) &&
           write_file_atomic(dir / "loncstatus.txt", format_status_txt(report), error);
}

} // namespace lonc
