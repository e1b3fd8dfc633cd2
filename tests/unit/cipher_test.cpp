#include "lonc/core/cipher.hpp"

#include <gtest/gtest.h>

#include "vectors.hpp"

namespace lonc {
namespace {

LinkKey key_from_hex(const std::string& hex) {
    LinkKey key{};
    const auto bytes = test::unhex(hex);
    EXPECT_EQ(bytes.size(), key.size());
    std::copy(bytes.begin(), bytes.end(), key.begin());
    return key;
}

TEST(Cipher, StandardIdeaVector) {
    const LinkCipher c(key_from_hex("00010002000300040005000600070008"));
    std::string out;
    c.encode(test::unhex("0000000100020003"), out);
    // 8 bytes go out in two blocks: the data, then a block of spaces.
    ASSERT_EQ(out.substr(0, 6), "enc:8:");
    EXPECT_EQ(out.substr(6, 16), "11fbed2b01986de5");
}

TEST(Cipher, EveryVectorRowEncodesAndDecodes) {
    const auto rows = test::load_tsv("enc.tsv");
    ASSERT_EQ(rows.size(), 16U) << "enc.tsv must have 16 rows; the loader dropped some";
    for (const auto& row : rows) {
        ASSERT_EQ(row.size(), 3U);
        const LinkCipher c(key_from_hex(row[0]));
        const auto plain = test::unhex(row[1]);
        std::string encoded;
        c.encode(plain, encoded);
        EXPECT_EQ(encoded, row[2]) << "key " << row[0];
        std::string decoded;
        ASSERT_EQ(c.decode(row[2], decoded), DecodeError::none) << row[2];
        EXPECT_EQ(decoded, plain);
    }
}

TEST(Cipher, BlockCountIsLenOver8PlusOne) {
    const LinkCipher c(LinkKey{});
    for (std::size_t len : {0U, 1U, 7U, 8U, 9U, 15U, 16U, 17U, 5000U}) {
        std::string out;
        c.encode(std::string(len, 'x'), out);
        const auto hex = out.substr(out.rfind(':') + 1);
        EXPECT_EQ(hex.size(), (len / 8 + 1) * 16) << len;
    }
}

TEST(Cipher, DecodeAcceptsUpperCaseHex) {
    const LinkCipher c(LinkKey{});
    std::string line;
    c.encode("hello", line);
    for (auto& ch : line) {
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    line.replace(0, 4, "enc:");
    std::string out;
    ASSERT_EQ(c.decode(line, out), DecodeError::none);
    EXPECT_EQ(out, "hello");
}

TEST(Cipher, DecodeIsStrict) {
    const LinkCipher c(LinkKey{});
    std::string good;
    c.encode("0123456789", good); // LEN 10 -> 2 blocks
    const auto hex = good.substr(good.rfind(':') + 1);
    ASSERT_EQ(hex.size(), 32U);
    const struct {
        std::string line;
        DecodeError want;
    } cases[] = {
        {"", DecodeError::not_enc},
        {"enc", DecodeError::not_enc},
        {"ENC:10:" + hex, DecodeError::not_enc},
        {"enc:", DecodeError::missing_fields},
        {"enc:10", DecodeError::missing_fields},
        {"enc::" + hex, DecodeError::bad_length},
        {"enc:-1:" + hex, DecodeError::bad_length},
        {"enc:+10:" + hex, DecodeError::bad_length},
        {"enc: 10:" + hex, DecodeError::bad_length},
        {"enc:1x:" + hex, DecodeError::bad_length},
        {"enc:99999999999999999999999:" + hex, DecodeError::bad_length},
        {"enc:18446744073709551615:" + hex, DecodeError::bad_length},
        {"enc:2000000000:" + hex, DecodeError::bad_length},
        {"enc:10:", DecodeError::wrong_block_count},
        {"enc:10:" + hex.substr(0, 16), DecodeError::wrong_block_count},
        {"enc:10:" + hex + "00", DecodeError::wrong_block_count},
        {"enc:16:" + hex, DecodeError::wrong_block_count}, // 16 needs 3 blocks
        {"enc:7:" + hex, DecodeError::wrong_block_count},  // 7 needs 1 block
        {"enc:10:" + hex.substr(0, 31) + "g", DecodeError::bad_hex},
        {"enc:10:" + hex.substr(0, 31) + ":", DecodeError::bad_hex},
        {"enc:10:" + std::string(31, '0') + "\n", DecodeError::bad_hex},
    };
    for (const auto& tc : cases) {
        std::string out = "keep";
        EXPECT_EQ(c.decode(tc.line, out), tc.want) << "'" << tc.line << "'";
        EXPECT_EQ(out, "keep") << "output changed on error for '" << tc.line << "'";
    }
    std::string out;
    EXPECT_EQ(c.decode(good, out), DecodeError::none);
    EXPECT_EQ(out, "0123456789");
}

TEST(Cipher, LooksEncryptedNeedsDigitsAndColon) {
    EXPECT_TRUE(looks_encrypted("enc:0:abcd"));
    EXPECT_TRUE(looks_encrypted("enc:123:"));
    EXPECT_FALSE(looks_encrypted("enc"));
    EXPECT_FALSE(looks_encrypted("enc:"));
    EXPECT_FALSE(looks_encrypted("enc::00"));
    EXPECT_FALSE(looks_encrypted("enc:12"));
    EXPECT_FALSE(looks_encrypted("encyclopedia"));
    EXPECT_FALSE(looks_encrypted("enc:x:00"));
    EXPECT_FALSE(looks_encrypted("unknown_cmd"));
}

} // namespace
} // namespace lonc
