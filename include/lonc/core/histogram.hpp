// Request latencies in fixed buckets, cheap to record on every request and
// small to carry from a child to the supervisor (the metrics file's
// lonc_request_duration_seconds histogram).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lonc {

class LatencyHistogram {
public:
    // Upper bounds in seconds; a last, implicit bucket holds everything above.
    static constexpr std::array<double, 16> bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                      1,      5,       30,     300};
    static constexpr std::size_t buckets = bounds.size() + 1;

    void observe(double seconds) noexcept;

    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
    [[nodiscard]] double sum() const noexcept { return sum_; }
    // Observations in bucket i alone (not cumulative); i == bounds.size()
    // is the overflow bucket.
    [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept { return counts_.at(i); }

    // "sum count b0 b1 ... b16": the form a child sends its supervisor.
    [[nodiscard]] std::string encode() const;
    [[nodiscard]] static std::optional<LatencyHistogram> decode(std::string_view text);

private:
    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t count_ = 0;
    double sum_ = 0;
};

} // namespace lonc
