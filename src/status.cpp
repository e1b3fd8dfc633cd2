#include "lonc/status.hpp"

#include "lonc/clock_text.hpp"
#include "lonc/fd.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace lonc {
namespace {

std::string field(const ipc::Fields& f, std::string_view key, std::string_view fallback = "") {
    const auto* v = ipc::find(f, key);
    return v != nullptr ? *v : std::string(fallback);
}

// Tabs and newlines would break the line format.
std::string one_field(std::string s) {
    for (auto& c : s) {
        if (c == '\t' || c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    return s;
}

std::int64_t number(const ipc::Fields& f, std::string_view key) {
    const auto* v = ipc::find(f, key);
    std::int64_t n = 0;
    if (v != nullptr) {
        std::from_chars(v->data(), v->data() + v->size(), n);
    }
    return n;
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
        const auto status = p.answered ? field(p.fields, "status")
                                       : perl_localtime(r.time) + ": no answer to status request";
        out += std::to_string(p.pid) + "\t" + p.id + "\t" + one_field(status) + "\t" +
               one_field(field(p.fields, "last_log")) + "\n";
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
        json j = {{"id", p.id}, {"state", p.state}, {"answered", p.answered}};
        j["pid"] = p.pid > 0 ? json(p.pid) : json(nullptr);
        if (p.answered) {
            j["link"] = field(p.fields, "link");
            j["links_up"] = number(p.fields, "links_up");
            j["links_total"] = number(p.fields, "links_total");
            j["link_since"] = number(p.fields, "since");
            j["local_ports"] = field(p.fields, "local_ports");
            j["last_error"] = field(p.fields, "last_error");
            for (const char* k :
                 {"requests", "errors", "con_lost", "rejected", "timeouts", "reconnects", "queue",
                  "clients", "spool_pending", "spool_delivered", "spool_bad"}) {
                j[k] = number(p.fields, k);
            }
            const auto age = spool_oldest_age(p, r.time);
            j["spool_oldest_age_seconds"] = age ? json(*age) : json(nullptr);
            j["status"] = field(p.fields, "status");
            j["last_log"] = field(p.fields, "last_log");
        }
        peers.push_back(std::move(j));
    }
    json undeliverable = json::object();
    for (const auto& [host, files] : r.reload.undeliverable) {
        undeliverable[host] = files;
    }
    const json doc = {
        {"schema", status_json_schema},
        {"generation", r.generation},
        {"time", static_cast<std::int64_t>(r.time)},
        {"parent",
         {{"pid", r.parent_pid}, {"status", r.parent_status}, {"last_log", r.parent_last_log}}},
        {"peers", std::move(peers)},
        {"reload",
         {{"time", static_cast<std::int64_t>(r.reload.time)},
          {"success", r.reload.success},
          {"last_success", static_cast<std::int64_t>(r.reload.last_success)},
          {"result", r.reload.result},
          {"undeliverable", std::move(undeliverable)}}}};
    // Replace invalid UTF-8 (peer data can hold anything) rather than throw.
    return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::optional<std::int64_t> spool_oldest_age(const PeerStatus& peer, std::time_t now) {
    const auto oldest = number(peer.fields, "spool_oldest"); // the child's: epoch seconds
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

} // namespace lonc
