// The link cipher: IDEA (Crypto++), one 8-byte block at a time, carried on
// the wire as "enc:LEN:HEX" (docs/PROTOCOL.md section 2.5).
#pragma once

#include "lonc/core/keys.hpp"

#include <cryptopp/idea.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace lonc {

enum class DecodeError {
    none,
    not_enc,           // does not start with "enc:"
    missing_fields,    // no second ':' after LEN
    bad_length,        // LEN is not a plain decimal number, or absurdly large
    wrong_block_count, // HEX is not exactly LEN/8+1 blocks of 16 hex digits
    bad_hex,           // a character that is not a hex digit
};

[[nodiscard]] const char* to_string(DecodeError e) noexcept;

// True for "enc:" followed by one or more digits and ':'. Only such replies
// are decrypted; anything else from lond passes through
// (docs/differences.md, bug 9).
[[nodiscard]] bool looks_encrypted(std::string_view line) noexcept;

// Number of 8-byte blocks an LEN-byte command is sent in: LEN/8 + 1.
[[nodiscard]] constexpr std::size_t enc_blocks(std::size_t len) noexcept {
    return len / 8 + 1;
}

class LinkCipher {
public:
    explicit LinkCipher(const LinkKey& key);

    // Appends "enc:LEN:HEX" for cmd (no newline) to out.
    void encode(std::string_view cmd, std::string& out) const;

    // Decodes a whole "enc:LEN:HEX" line (no newline) and appends the
    // plaintext to out. On error out is left as it was.
    [[nodiscard]] DecodeError decode(std::string_view line, std::string& out) const;

private:
    CryptoPP::IDEA::Encryption enc_;
    CryptoPP::IDEA::Decryption dec_;
};

} // namespace lonc
