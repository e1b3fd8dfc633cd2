#include "lonc/core/keys.hpp"

#include <gtest/gtest.h>

#include "vectors.hpp"

namespace lonc {
namespace {

TEST(Keys, EveryVectorRowDerivesItsKey) {
    const auto rows = test::load_tsv("keys.tsv");
    ASSERT_EQ(rows.size(), 40U) << "keys.tsv must have 40 rows; the loader dropped some";
    for (const auto& row : rows) {
        ASSERT_EQ(row.size(), 4U);
        EXPECT_EQ(to_hex(derive_link_key(row[0], row[1], row[2])), row[3])
            << "remote=" << row[0] << " local=" << row[1] << " buildkey=" << row[2];
    }
}

TEST(Keys, BuildkeyNewlineIsStripped) {
    // The original lonc kept "\n"; lond does not. Short inputs show it.
    EXPECT_EQ(derive_link_key("a", "s1", "12\n"), derive_link_key("a", "s1", "12"));
    EXPECT_EQ(derive_link_key("a", "s1", "12\r\n"), derive_link_key("a", "s1", "12"));
}

TEST(Keys, PackH32FollowsPerl) {
    // '_' -> f, '-' -> d, '.' -> e; letters ((c & 15) + 9) & 15; padding 0.
    EXPECT_EQ(to_hex(perl_pack_h32("_-.")), "fde00000000000000000000000000000");
    EXPECT_EQ(to_hex(perl_pack_h32("aFfA09")), "affa0900000000000000000000000000");
    EXPECT_EQ(to_hex(perl_pack_h32("")), std::string(32, '0'));
    // Only the first 32 characters count.
    EXPECT_EQ(to_hex(perl_pack_h32(std::string(40, '1'))), std::string(32, '1'));
}

TEST(Keys, RemoteIdComesFirst) {
    EXPECT_NE(derive_link_key("msul1", "msul2", "AB"), derive_link_key("msul2", "msul1", "AB"));
}

} // namespace
} // namespace lonc
