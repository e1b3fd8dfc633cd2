// The delayed-message spool: file names and file contents come from
// whoever can write lonSockDir/delayed/. The name parser must only accept
// <digits>.<middle without dots>.<safe host id> (the host id becomes part
// of paths), and the byte parser and the file reader must agree on every
// file: the first line only when it is '\n'-terminated and at most max_line
// bytes long, never reading more than max_line + 1 bytes.
//
// Input: one byte of max_line, then the bytes used both as a file name and
// as a file's contents.
#include "lonc/core/config.hpp"
#include "lonc/core/spool.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <unistd.h>

#include "fuzz_util.hpp"

namespace {

const std::string& scratch_file() {
    static const std::string path = [] {
        const char* dir = std::getenv("TMPDIR");
        return std::string(dir != nullptr ? dir : "/tmp") + "/lonc-spool-fuzz." +
               std::to_string(::getpid());
    }();
    return path;
}

void check_name(std::string_view name) {
    const auto parsed = lonc::parse_spool_name(name);
    if (!parsed) {
        return;
    }
    FUZZ_CHECK(lonc::valid_host_id(parsed->host));
    FUZZ_CHECK(parsed->middle.find('.') == std::string_view::npos);
    FUZZ_CHECK(parsed->middle.find('/') == std::string_view::npos);
    const auto epoch_text = name.substr(0, name.find('.'));
    FUZZ_CHECK(!epoch_text.empty());
    FUZZ_CHECK(epoch_text.find_first_not_of("0123456789") == std::string_view::npos);
    FUZZ_CHECK(
        std::to_string(parsed->epoch) ==
        epoch_text.substr(std::min(epoch_text.find_first_not_of('0'), epoch_text.size() - 1)));
    FUZZ_CHECK(std::string(epoch_text) + "." + std::string(parsed->middle) + "." +
                   std::string(parsed->host) ==
               name);
    for (const std::string_view suffix : {".bad", ".sent"}) {
        FUZZ_CHECK(parsed->host.size() <= suffix.size() ||
                   parsed->host.substr(parsed->host.size() - suffix.size()) != suffix);
    }
}

void check_bytes(std::string_view data, bool eof, std::size_t max_line) {
    std::string line = "untouched";
    const auto r = lonc::parse_spool_bytes(data, eof, max_line, line);
    FUZZ_CHECK(lonc::to_string(r) != nullptr);
    const auto nl = data.find('\n');
    switch (r) {
    case lonc::SpoolRead::ok:
        FUZZ_CHECK(nl != std::string_view::npos && nl <= max_line);
        FUZZ_CHECK(line == data.substr(0, nl));
        break;
    case lonc::SpoolRead::too_long:
        FUZZ_CHECK(nl == std::string_view::npos ? data.size() > max_line : nl > max_line);
        FUZZ_CHECK(line == "untouched");
        break;
    case lonc::SpoolRead::empty:
        FUZZ_CHECK(data.empty() && eof);
        break;
    case lonc::SpoolRead::no_newline:
        FUZZ_CHECK(nl == std::string_view::npos && eof && !data.empty() && data.size() <= max_line);
        break;
    case lonc::SpoolRead::unreadable:
        FUZZ_CHECK(!eof && nl == std::string_view::npos && data.size() <= max_line);
        break;
    case lonc::SpoolRead::missing:
        FUZZ_CHECK(false); // the byte parser never says so
        break;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::size_t max_line = 1 + data[0] * 17U;
    const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

    check_name(bytes);
    check_bytes(bytes, true, max_line);
    check_bytes(bytes, false, max_line);

    // The reader on a real file agrees with the byte parser.
    const auto& path = scratch_file();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    const auto file = lonc::read_spool_file(path, max_line);
    ::unlink(path.c_str());
    std::string line;
    const auto want = lonc::parse_spool_bytes(bytes, true, max_line, line);
    FUZZ_CHECK(file.result == want);
    if (want == lonc::SpoolRead::ok) {
        FUZZ_CHECK(file.line == line);
    }
    FUZZ_CHECK(file.mtime != 0);
    return 0;
}
