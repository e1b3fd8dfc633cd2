// Incremental line framing with a maximum line length.
//
// Bytes are read straight into the buffer (prepare + commit) and complete
// lines are taken out with next_line(). Memory stays bounded: once the
// unterminated tail exceeds max_line, overflowed() is true and the owner is
// expected to stop reading and drop the stream.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace lonc {

class LineBuffer {
public:
    explicit LineBuffer(std::size_t max_line) noexcept : max_line_(max_line) {}

    // Writable space of at least min_free bytes (less only when the line
    // limit leaves less room; empty once overflowed()).
    [[nodiscard]] std::span<char> prepare(std::size_t min_free = 4096);
    void commit(std::size_t n) noexcept { end_ += n; }
    void append(std::string_view data);

    // The next complete line without its '\n' (a '\r' before it is kept:
    // the protocol is byte-exact). Valid until the next non-const call.
    [[nodiscard]] std::optional<std::string_view> next_line() noexcept;

    // A line (terminated or not) longer than max_line was seen.
    [[nodiscard]] bool overflowed() const noexcept { return overflowed_; }
    [[nodiscard]] std::size_t buffered() const noexcept { return end_ - begin_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }
    [[nodiscard]] std::size_t max_line() const noexcept { return max_line_; }
    // A new limit (a reload); a tail already longer than it overflows.
    void set_max_line(std::size_t max_line) noexcept { max_line_ = max_line; }

    // Forget everything, keep the limit; frees the storage.
    void reset() noexcept;
    // Forget everything but keep the storage (for reuse by a new stream).
    void clear() noexcept {
        begin_ = scan_ = end_ = 0;
        overflowed_ = false;
    }

private:
    void make_room(std::size_t min_free);

    std::unique_ptr<char[]> data_;
    std::size_t cap_ = 0;
    std::size_t begin_ = 0; // first unconsumed byte
    std::size_t scan_ = 0;  // bytes before this hold no '\n' (from begin_)
    std::size_t end_ = 0;   // end of valid data
    std::size_t max_line_;
    bool overflowed_ = false;
};

} // namespace lonc
