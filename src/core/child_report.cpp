#include "lonc/core/child_report.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <sys/resource.h>
#include <type_traits>
#include <unistd.h>
#include <unordered_map>

namespace lonc {
namespace {

void escape_into(std::string& out, std::string_view value) {
    for (const char c : value) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\\') {
            out += "\\\\";
        } else {
            out += c;
        }
    }
}

std::optional<std::string> unescape(std::string_view raw) {
    std::string value;
    value.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
            value += raw[i];
            continue;
        }
        if (++i == raw.size()) {
            return std::nullopt;
        }
        if (raw[i] == 'n') {
            value += '\n';
        } else if (raw[i] == '\\') {
            value += '\\';
        } else {
            return std::nullopt;
        }
    }
    return value;
}

// Each field type's text, both ways.
std::string text_of(std::uint64_t v) {
    return std::to_string(v);
}
std::string text_of(std::int64_t v) {
    return std::to_string(v);
}
std::string text_of(const std::string& v) {
    return v;
}
std::string text_of(LinkState v) {
    return std::string(to_string(v));
}
std::string text_of(const LatencyHistogram& v) {
    return v.encode();
}
std::string text_of(double v) {
    char buf[64];
    (void)std::snprintf(buf, sizeof buf, "%.6f", v);
    return buf;
}

template <typename T> bool number_from(std::string_view text, T& out) {
    const auto* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, out);
    return ec == std::errc{} && p == end && !text.empty();
}
bool from_text(std::string_view t, std::uint64_t& v) {
    return number_from(t, v);
}
bool from_text(std::string_view t, std::int64_t& v) {
    return number_from(t, v);
}
bool from_text(std::string_view t, double& v) {
    return number_from(t, v);
}
bool from_text(std::string_view t, std::string& v) {
    v = t;
    return true;
}
bool from_text(std::string_view t, LinkState& v) {
    const auto s = parse_link_state(t);
    v = s.value_or(LinkState::down);
    return s.has_value();
}
bool from_text(std::string_view t, LatencyHistogram& v) {
    auto h = LatencyHistogram::decode(t);
    if (h) {
        v = *h;
    }
    return h.has_value();
}

template <typename T> nlohmann::json json_of(const T& v) {
    if constexpr (std::is_same_v<T, LinkState>) {
        return to_string(v);
    } else if constexpr (std::is_same_v<T, LatencyHistogram>) {
        return v.encode(); // has no json name: never in the document
    } else {
        return v;
    }
}

template <typename T> void from_json(const nlohmann::json& j, T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
        if (j.is_string()) {
            v = j.get<std::string>();
        }
    } else if constexpr (std::is_same_v<T, LinkState>) {
        if (j.is_string()) {
            v = parse_link_state(j.get<std::string>()).value_or(v);
        }
    } else if constexpr (std::is_integral_v<T>) {
        if (j.is_number_integer()) {
            v = j.get<T>();
        }
    }
}

} // namespace

std::string_view to_string(LinkState s) noexcept {
    return s == LinkState::up ? "up" : "down";
}

std::optional<LinkState> parse_link_state(std::string_view text) noexcept {
    if (text == "up") {
        return LinkState::up;
    }
    if (text == "down") {
        return LinkState::down;
    }
    return std::nullopt;
}

ProcessFacts read_self_facts() {
    ProcessFacts p;
    rusage ru{};
    if (::getrusage(RUSAGE_SELF, &ru) == 0) {
        p.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                        static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    }
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size = 0;
    std::uint64_t resident = 0;
    if (statm >> size >> resident) {
        p.rss_bytes = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    }
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (const dirent* e = ::readdir(d)) {
            p.open_fds += e->d_name[0] != '.' ? 1 : 0;
        }
        ::closedir(d);
        p.open_fds -= p.open_fds > 0 ? 1 : 0; // the directory's own descriptor
    }
    return p;
}

std::string ChildReport::encode() const {
    std::string out;
    out.reserve(512);
    for_each_report_field([&](const auto& row) {
        out += row.key;
        out += '=';
        escape_into(out, text_of(row.cget(*this)));
        out += '\n';
    });
    return out;
}

std::optional<ChildReport> ChildReport::decode(std::string_view payload, std::string& error) {
    std::unordered_map<std::string_view, std::string> values;
    while (!payload.empty()) {
        const auto nl = payload.find('\n');
        if (nl == std::string_view::npos) {
            error = "last line without a newline";
            return std::nullopt;
        }
        const auto line = payload.substr(0, nl);
        payload.remove_prefix(nl + 1);
        const auto eq = line.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            error = "line without key=value";
            return std::nullopt;
        }
        auto value = unescape(line.substr(eq + 1));
        if (!value) {
            error = "bad escape in " + std::string(line.substr(0, eq));
            return std::nullopt;
        }
        values.insert_or_assign(line.substr(0, eq), std::move(*value));
    }
    ChildReport r;
    error.clear();
    for_each_report_field([&](const auto& row) {
        if (!error.empty()) {
            return;
        }
        const auto it = values.find(row.key);
        if (it == values.end()) {
            if (!report_field_optional(row.key)) {
                error = "missing field " + std::string(row.key);
            }
        } else if (!from_text(it->second, row.get(r))) {
            error = "bad value for " + std::string(row.key) + ": '" + it->second + "'";
        }
    });
    if (!error.empty()) {
        return std::nullopt;
    }
    return r;
}

void add_to_json(const ChildReport& r, nlohmann::json& peer) {
    for_each_report_field([&](const auto& row) {
        if (!row.json.empty()) {
            peer[std::string(row.json)] = json_of(row.cget(r));
        }
    });
}

ChildReport report_from_json(const nlohmann::json& peer) {
    ChildReport r;
    for_each_report_field([&](const auto& row) {
        if (!row.json.empty()) {
            if (const auto it = peer.find(row.json); it != peer.end()) {
                from_json(*it, row.get(r));
            }
        }
    });
    return r;
}

} // namespace lonc
