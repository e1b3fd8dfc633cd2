// The line framer, fed the way lonc feeds it (prepare, commit, take every
// complete line), must give the same lines however the input is chunked,
// and exactly the lines a plain split gives up to the first line longer
// than max_line, where it reports overflow. It never holds more than
// max_line + 1 bytes.
//
// Input: two bytes of max_line, one byte seeding the chunk sizes, the data.
#include "lonc/core/line_buffer.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"

namespace {

struct Result {
    std::vector<std::string> lines;
    bool overflowed = false;
};

// What the framer must produce: lines split at '\n', up to the first one
// (terminated or the unterminated tail) longer than max_line.
Result reference(std::string_view data, std::size_t max_line) {
    Result r;
    for (;;) {
        const auto nl = data.find('\n');
        const auto len = nl == std::string_view::npos ? data.size() : nl;
        if (len > max_line) {
            r.overflowed = true;
            return r;
        }
        if (nl == std::string_view::npos) {
            return r;
        }
        r.lines.emplace_back(data.substr(0, nl));
        data.remove_prefix(nl + 1);
    }
}

// Feeds data in chunks whose sizes come from next_size(), taking every
// complete line after each chunk, as the daemon does.
template <typename NextSize>
Result feed(std::string_view data, std::size_t max_line, NextSize&& next_size) {
    Result r;
    lonc::LineBuffer b(max_line);
    auto take = [&] {
        while (auto line = b.next_line()) {
            r.lines.emplace_back(*line);
        }
        FUZZ_CHECK(b.buffered() <= max_line + 1);
        FUZZ_CHECK(b.capacity() <= max_line + 1);
    };
    while (!data.empty()) {
        auto space = b.prepare(next_size());
        if (space.empty()) {
            FUZZ_CHECK(b.overflowed());
            break;
        }
        const auto n = std::min({space.size(), data.size(), next_size()});
        std::memcpy(space.data(), data.data(), n);
        b.commit(n);
        data.remove_prefix(n);
        take();
        if (b.overflowed()) {
            break;
        }
    }
    take();
    r.overflowed = b.overflowed();
    FUZZ_CHECK(!b.next_line().has_value() || !r.overflowed);
    b.reset();
    FUZZ_CHECK(b.buffered() == 0 && b.capacity() == 0 && !b.overflowed());
    return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) {
        return 0;
    }
    const std::size_t max_line = 1 + ((std::size_t{data[0]} | std::size_t{data[1]} << 8U) % 4096);
    std::uint32_t seed = data[2];
    const std::string_view text(reinterpret_cast<const char*>(data + 3), size - 3);

    const auto want = reference(text, max_line);
    const auto whole = feed(text, max_line, [] { return std::size_t{1} << 20U; });
    const auto bytes = feed(text, max_line, [] { return std::size_t{1}; });
    const auto random = feed(text, max_line, [&seed] {
        seed = seed * 1103515245U + 12345U;
        return std::size_t{1} + (seed >> 16U) % 700;
    });
    for (const auto* r : {&whole, &bytes, &random}) {
        FUZZ_CHECK(r->lines == want.lines);
        FUZZ_CHECK(r->overflowed == want.overflowed);
    }
    return 0;
}
