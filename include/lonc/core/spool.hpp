// The delayed-message spool: lonSockDir/delayed/<epoch>.<middle>.<hostid>,
// each file holding one request line that lonnet could not deliver.
#pragma once

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

namespace lonc {

struct SpoolName {
    std::uint64_t epoch = 0;
    std::string_view middle;
    std::string_view host; // everything after the second dot
};

// Parses <epoch>.<middle>.<hostid>: epoch all digits, middle without dots
// (lonnet strips non-word characters), host a valid host id (which never
// ends in .bad or .sent). Anything else (lonnet's temp and lock files, our
// own <name>.bad and <name>.sent files) is not a spool entry.
[[nodiscard]] std::optional<SpoolName> parse_spool_name(std::string_view name) noexcept;

// What a delayed/ entry is to lonc: a message waiting (lonnet's name), one
// set aside after too many deaths (<name>.bad), or the marker of a delivery
// whose S line is still to be written (<name>.sent).
enum class SpoolKind { pending, bad, sent };

struct SpoolEntry {
    std::string name; // the directory entry, suffix included
    std::string host;
    std::uint64_t epoch = 0;
    SpoolKind kind = SpoolKind::pending;
    // The message's own name: name without .bad or .sent.
    [[nodiscard]] std::string_view base() const noexcept;
    // Oldest first: epoch as a number, then name.
    friend bool operator<(const SpoolEntry& a, const SpoolEntry& b) {
        return a.epoch != b.epoch ? a.epoch < b.epoch : a.name < b.name;
    }
    friend bool operator==(const SpoolEntry& a, const SpoolEntry& b) { return a.name == b.name; }
};

// One directory entry's name as lonc sees it; nullopt for anything else
// (lonnet's temp and lock files, stray names).
[[nodiscard]] std::optional<SpoolEntry> spool_entry(std::string_view name);

// The one reader of delayed/ (the spooler, the supervisor and lonctl all
// list it through this): every entry spool_entry knows, in directory order.
// nullopt when dir cannot be opened (errno says why).
[[nodiscard]] std::optional<std::vector<SpoolEntry>> list_spool(const std::filesystem::path& dir);

// One version of a spool file. lonnet rewrites a name with a truncating
// open, which changes mtime and ctime; a rename changes ctime only.
struct SpoolStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    timespec ctime{};
    // The same file with the same bytes, whatever happened to its name.
    [[nodiscard]] bool same_content(const SpoolStamp& o) const noexcept;
    friend bool operator==(const SpoolStamp& a, const SpoolStamp& b) noexcept {
        return a.same_content(b) && a.ctime.tv_sec == b.ctime.tv_sec &&
               a.ctime.tv_nsec == b.ctime.tv_nsec;
    }
};
[[nodiscard]] SpoolStamp stamp_of(const struct stat& st) noexcept;

// Seconds since the file last changed, by its newest of mtime and ctime
// (a time in the future counts as now, so the result is never negative).
[[nodiscard]] double spool_age(const SpoolStamp& s, timespec now) noexcept;

enum class SpoolRead {
    ok,
    missing,    // gone (delivered by someone else, or removed)
    empty,      // no bytes at all
    no_newline, // the first line is not terminated (yet?)
    too_long,   // the first line exceeds the limit
    unreadable, // open/read failed for another reason
};
[[nodiscard]] const char* to_string(SpoolRead r) noexcept;

struct SpoolFile {
    SpoolRead result = SpoolRead::unreadable;
    std::string line;      // the first line, without '\n'
    std::time_t mtime = 0; // last change, to tell a half-written file from a bad one
    SpoolStamp stamp;      // of the file as opened (result ok)
    int error = 0;         // errno for unreadable
    // The file changed while it was read (its stamp after the read is not
    // the one before): line may belong to neither version. Look again later.
    bool changed = false;
};

// Classifies the bytes read from the start of a spool file (at most
// max_line + 1 of them; eof: the file has no more): ok with the first line
// (without '\n') in line, or why not.
[[nodiscard]] SpoolRead parse_spool_bytes(std::string_view data, bool eof, std::size_t max_line,
                                          std::string& line);

// Reads the first line of a spool file, never more than max_line + 1 bytes;
// stamp is taken before the read and checked after it (changed).
[[nodiscard]] SpoolFile read_spool_file(const std::filesystem::path& path, std::size_t max_line);

} // namespace lonc
