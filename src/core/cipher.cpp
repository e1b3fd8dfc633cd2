#include "lonc/core/cipher.hpp"

#include <array>
#include <charconv>
#include <cstring>

namespace lonc {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// A LEN no reply line could honestly carry (1 GiB); keeps arithmetic safe.
constexpr std::size_t max_enc_len = std::size_t{1} << 30U;

} // namespace

const char* to_string(DecodeError e) noexcept {
    switch (e) {
    case DecodeError::none:
        return "ok";
    case DecodeError::not_enc:
        return "not an enc: line";
    case DecodeError::missing_fields:
        return "missing fields";
    case DecodeError::bad_length:
        return "bad length";
    case DecodeError::wrong_block_count:
        return "wrong block count";
    case DecodeError::bad_hex:
        return "bad hex";
    }
    return "unknown";
}

bool looks_encrypted(std::string_view line) noexcept {
    if (line.substr(0, 4) != "enc:") {
        return false;
    }
    std::size_t i = 4;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') {
        ++i;
    }
    return i > 4 && i < line.size() && line[i] == ':';
}

LinkCipher::LinkCipher(const LinkKey& key)
    : enc_(key.data(), key.size()), dec_(key.data(), key.size()) {}

void LinkCipher::encode(std::string_view cmd, std::string& out) const {
    const auto blocks = enc_blocks(cmd.size());
    char len_text[24];
    const auto [end, ec] = std::to_chars(std::begin(len_text), std::end(len_text), cmd.size());
    (void)ec; // cannot fail: 24 characters hold any size_t
    out.reserve(out.size() + 6 + static_cast<std::size_t>(end - len_text) + blocks * 16);
    out += "enc:";
    out.append(len_text, end);
    out += ':';
    std::array<CryptoPP::byte, 8> in{};
    std::array<CryptoPP::byte, 8> cipher{};
    for (std::size_t b = 0; b < blocks; ++b) {
        const auto off = b * 8;
        in.fill(' ');
        const auto n = off < cmd.size() ? std::min<std::size_t>(8, cmd.size() - off) : 0;
        std::memcpy(in.data(), cmd.data() + off, n);
        enc_.ProcessBlock(in.data(), cipher.data());
        for (const auto c : cipher) {
            out += hex_digits[c >> 4U];
            out += hex_digits[c & 15U];
        }
    }
}

DecodeError LinkCipher::decode(std::string_view line, std::string& out) const {
    if (line.substr(0, 4) != "enc:") {
        return DecodeError::not_enc;
    }
    line.remove_prefix(4);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
        return DecodeError::missing_fields;
    }
    const auto len_text = line.substr(0, colon);
    const auto hex = line.substr(colon + 1);
    if (len_text.empty()) {
        return DecodeError::bad_length;
    }
    std::size_t len = 0;
    const auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (ec != std::errc{} || ptr != len_text.data() + len_text.size() || len > max_enc_len) {
        return DecodeError::bad_length;
    }
    const auto blocks = enc_blocks(len);
    if (hex.size() != blocks * 16) {
        return DecodeError::wrong_block_count;
    }
    const auto old_size = out.size();
    out.resize(old_size + blocks * 8);
    auto* dst = reinterpret_cast<CryptoPP::byte*>(out.data() + old_size);
    std::array<CryptoPP::byte, 8> in{};
    for (std::size_t b = 0; b < blocks; ++b) {
        for (std::size_t i = 0; i < 8; ++i) {
            const int hi = hex_value(hex[b * 16 + 2 * i]);
            const int lo = hex_value(hex[b * 16 + 2 * i + 1]);
            if (hi < 0 || lo < 0) {
                out.resize(old_size);
                return DecodeError::bad_hex;
            }
            in[i] = static_cast<CryptoPP::byte>((hi << 4) | lo);
        }
        dec_.ProcessBlock(in.data(), dst + b * 8);
    }
    out.resize(old_size + len);
    return DecodeError::none;
}

} // namespace lonc
