#include "lonc/core/histogram.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lonc {
namespace {

TEST(LatencyHistogram, ObservationsLandInTheirBuckets) {
    LatencyHistogram h;
    h.observe(0.00005); // below the first bound
    h.observe(0.0001);  // exactly a bound: counts in that bucket (le)
    h.observe(0.003);
    h.observe(1000); // past the last bound
    EXPECT_EQ(h.count(), 4U);
    EXPECT_EQ(h.bucket(0), 2U);
    EXPECT_EQ(h.bucket(5), 1U); // (0.0025, 0.005]
    EXPECT_EQ(h.bucket(LatencyHistogram::bounds.size()), 1U);
    EXPECT_NEAR(h.sum(), 1000.00315, 1e-9);
}

TEST(LatencyHistogram, EncodeDecodeRoundTrip) {
    LatencyHistogram h;
    for (int i = 0; i < 100; ++i) {
        h.observe(0.0001 * i);
    }
    const auto back = LatencyHistogram::decode(h.encode());
    ASSERT_TRUE(back.has_value()) << h.encode();
    EXPECT_EQ(back->count(), h.count());
    EXPECT_NEAR(back->sum(), h.sum(), 1e-6);
    for (std::size_t i = 0; i < LatencyHistogram::buckets; ++i) {
        EXPECT_EQ(back->bucket(i), h.bucket(i)) << i;
    }
    EXPECT_EQ(LatencyHistogram::decode(LatencyHistogram().encode())->count(), 0U);
}

TEST(LatencyHistogram, DecodeRejectsAnythingElse) {
    const std::string zeros = " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
    for (const std::string& bad : std::vector<std::string>{
             "", "x", "0.5", "0.5 1" + zeros,                               // count != buckets
             "-1 0" + zeros, "0 0" + zeros + " 0", "0 0" + zeros + "x",     // sign, extra, junk
             "0 0" + zeros.substr(0, zeros.size() - 2), "nan 0" + zeros}) { // short, not a number
        EXPECT_FALSE(LatencyHistogram::decode(bad).has_value()) << bad;
    }
    EXPECT_TRUE(LatencyHistogram::decode("0.000000 0" + zeros).has_value());
}

} // namespace
} // namespace lonc
