// access.conf parsing: any bytes give values and problems, never a crash.
// Invariants: names hold no whitespace, values no line break (a quoted
// value may hold spaces), line numbers point into the text, and what was
// read reads back the same when written out again.
#include "lonc/core/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"

namespace {

bool has_space(std::string_view s) {
    return s.find_first_of(" \t\r\v\f\n") != std::string_view::npos;
}

int count_lines(std::string_view text) {
    int n = 0;
    while (!text.empty()) {
        ++n;
        const auto nl = text.find('\n');
        if (nl == std::string_view::npos) {
            break;
        }
        text.remove_prefix(nl + 1);
    }
    return n;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto conf = lonc::parse_access_conf(text, "access.conf");
    const int lines = count_lines(text);
    for (const auto& [name, v] : conf.vars) {
        FUZZ_CHECK(!name.empty());
        FUZZ_CHECK(!has_space(name) && v.value.find('\n') == std::string::npos);
        FUZZ_CHECK(v.line >= 1 && v.line <= lines);
    }
    for (const auto& p : conf.problems) {
        FUZZ_CHECK(p.line >= 1 && p.line <= lines);
        FUZZ_CHECK(!p.to_string().empty());
    }
    // Round trip: every value, written back quoted, reads back the same.
    std::string again;
    for (const auto& [name, v] : conf.vars) {
        again += "PerlSetVar " + name + " \"" + v.value + "\"\n";
    }
    const auto conf2 = lonc::parse_access_conf(again, "again");
    FUZZ_CHECK(conf2.problems.empty());
    FUZZ_CHECK(conf2.vars.size() == conf.vars.size());
    for (const auto& [name, v] : conf.vars) {
        const auto* back = conf2.get(name);
        FUZZ_CHECK(back != nullptr && *back == v.value);
    }
    // The typed settings: a host id that made it is safe as a file name.
    std::vector<lonc::Problem> problems;
    if (const auto settings = lonc::settings_from(conf, problems)) {
        FUZZ_CHECK(lonc::valid_host_id(settings->host_id));
        FUZZ_CHECK(settings->lond_port != 0);
        // Its socket is one entry directly in lonSockDir (which may be
        // written with a trailing '/').
        const auto sock = settings->socket_path(settings->host_id);
        FUZZ_CHECK(sock.filename() == settings->host_id);
        FUZZ_CHECK(sock.parent_path() == (settings->sock_dir / "x").parent_path());
    } else {
        // Said here, or already by the line that names the key without a value.
        FUZZ_CHECK(!problems.empty() || !conf.problems.empty());
    }
    return 0;
}
