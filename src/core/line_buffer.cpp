#include "lonc/core/line_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace lonc {

void LineBuffer::make_room(std::size_t min_free) {
    if (begin_ == end_) {
        begin_ = scan_ = end_ = 0;
    }
    if (cap_ - end_ >= min_free) {
        return;
    }
    const auto pending = end_ - begin_;
    if (begin_ > 0 && cap_ - pending >= min_free) {
        std::memmove(data_.get(), data_.get() + begin_, pending);
        scan_ -= begin_;
        begin_ = 0;
        end_ = pending;
        return;
    }
    const auto need = pending + min_free;
    auto cap = std::max<std::size_t>(cap_ * 2, 512);
    while (cap < need) {
        cap *= 2;
    }
    // Never more than the limit (prepare() asks for no more than that): a
    // line limit of 1 MiB + 1 costs at most that, not the next power of two.
    cap = std::min(cap, std::max(need, max_line_ + 1));
    auto fresh = std::make_unique_for_overwrite<char[]>(cap);
    if (pending > 0) {
        std::memcpy(fresh.get(), data_.get() + begin_, pending);
    }
    data_ = std::move(fresh);
    cap_ = cap;
    scan_ -= begin_;
    begin_ = 0;
    end_ = pending;
}

std::span<char> LineBuffer::prepare(std::size_t min_free) {
    if (overflowed_) {
        return {};
    }
    // Never hold more than one line's limit plus its newline: anything
    // beyond that cannot be framed anyway.
    const auto limit = max_line_ + 1;
    const auto pending = end_ - begin_;
    if (pending >= limit) {
        overflowed_ = true;
        return {};
    }
    min_free = std::min(min_free, limit - pending);
    make_room(min_free);
    return {data_.get() + end_, std::min(cap_ - end_, limit - pending)};
}

void LineBuffer::append(std::string_view data) {
    while (!data.empty()) {
        auto space = prepare(data.size());
        if (space.empty()) {
            return;
        }
        const auto n = std::min(space.size(), data.size());
        std::memcpy(space.data(), data.data(), n);
        commit(n);
        data.remove_prefix(n);
    }
}

std::optional<std::string_view> LineBuffer::next_line() noexcept {
    if (overflowed_) {
        return std::nullopt;
    }
    const auto from = std::max(scan_, begin_);
    const char* base = data_.get();
    const void* nl = from < end_ ? std::memchr(base + from, '\n', end_ - from) : nullptr;
    if (nl == nullptr) {
        scan_ = end_;
        if (end_ - begin_ > max_line_) {
            overflowed_ = true;
        }
        return std::nullopt;
    }
    const auto pos = static_cast<std::size_t>(static_cast<const char*>(nl) - base);
    if (pos - begin_ > max_line_) {
        overflowed_ = true;
        return std::nullopt;
    }
    std::string_view line(base + begin_, pos - begin_);
    begin_ = scan_ = pos + 1;
    return line;
}

void LineBuffer::reset() noexcept {
    data_.reset();
    cap_ = begin_ = scan_ = end_ = 0;
    overflowed_ = false;
}

} // namespace lonc
