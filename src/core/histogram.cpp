#include "lonc/core/histogram.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace lonc {

void LatencyHistogram::observe(double seconds) noexcept {
    const auto it = std::lower_bound(bounds.begin(), bounds.end(), seconds);
    ++counts_.at(static_cast<std::size_t>(it - bounds.begin()));
    ++count_;
    sum_ += seconds > 0 ? seconds : 0;
}

std::string LatencyHistogram::encode() const {
    char sum[32];
    std::snprintf(sum, sizeof sum, "%.6f", sum_);
    std::string out = sum;
    out += ' ';
    out += std::to_string(count_);
    for (const auto n : counts_) {
        out += ' ';
        out += std::to_string(n);
    }
    return out;
}

std::optional<LatencyHistogram> LatencyHistogram::decode(std::string_view text) {
    LatencyHistogram h;
    const char* p = text.data();
    const char* const end = text.data() + text.size();
    const char* sp = std::find(p, end, ' ');
    const auto [after_sum, sum_ec] = std::from_chars(p, sp, h.sum_);
    if (sum_ec != std::errc{} || after_sum != sp || !(h.sum_ >= 0)) {
        return std::nullopt;
    }
    p = sp;
    auto number = [&](std::uint64_t& out) {
        if (p == end || *p != ' ') {
            return false;
        }
        ++p;
        const auto [next, ec] = std::from_chars(p, end, out);
        if (ec != std::errc{} || next == p) {
            return false;
        }
        p = next;
        return true;
    };
    if (!number(h.count_)) {
        return std::nullopt;
    }
    std::uint64_t total = 0;
    for (auto& n : h.counts_) {
        if (!number(n)) {
            return std::nullopt;
        }
        total += n;
    }
    if (p != end || total != h.count_) {
        return std::nullopt;
    }
    return h;
}

} // namespace lonc
