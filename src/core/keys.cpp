#include "lonc/core/keys.hpp"

namespace lonc {
namespace {

constexpr bool is_alpha(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// tr/a-z/A-Z/; tr/G-P/0-9/; tr/Q-Z/0-9/
char perl_key_tr(char c) noexcept {
    if (c >= 'a' && c <= 'z') {
        c = static_cast<char>(c - 'a' + 'A');
    }
    if (c >= 'G' && c <= 'P') {
        return static_cast<char>('0' + (c - 'G'));
    }
    if (c >= 'Q' && c <= 'Z') {
        return static_cast<char>('0' + (c - 'Q'));
    }
    return c;
}

} // namespace

LinkKey perl_pack_h32(std::string_view s) noexcept {
    LinkKey key{};
    const auto n = s.size() < 32 ? s.size() : std::size_t{32};
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        const unsigned nibble = is_alpha(s[i]) ? ((c & 15U) + 9U) & 15U : c & 15U;
        auto& byte = key[i / 2];
        byte = static_cast<std::uint8_t>(byte | (i % 2 == 0 ? nibble << 4U : nibble));
    }
    return key;
}

LinkKey derive_link_key(std::string_view remote_id, std::string_view local_id,
                        std::string_view buildkey) {
    std::string ids;
    ids.reserve(remote_id.size() + local_id.size());
    for (const char c : remote_id) {
        ids += perl_key_tr(c);
    }
    for (const char c : local_id) {
        ids += perl_key_tr(c);
    }
    std::string bk;
    for (const char c : buildkey) {
        if (c != '\r' && c != '\n') {
            bk += c;
        }
    }
    std::string s;
    s.reserve(3 * (ids.size() + bk.size()));
    for (int i = 0; i < 3; ++i) {
        s += ids;
        s += bk;
    }
    return perl_pack_h32(s);
}

std::string to_hex(const LinkKey& key) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(32);
    for (const auto b : key) {
        out += digits[b >> 4U];
        out += digits[b & 15U];
    }
    return out;
}

} // namespace lonc
