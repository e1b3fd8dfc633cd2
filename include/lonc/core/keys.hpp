// Link key derivation, exactly as the original lonc and lond do it with
// Perl's tr///, substr and pack("H32", ...).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lonc {

using LinkKey = std::array<std::uint8_t, 16>;

// remote_id is the lond's host id, local_id ours (the original writes
// "$conserver.$lonHostID"). The buildkey is what lond answered to "ekey";
// CR and LF are stripped from it, as lond does (the original lonc kept the
// newline: docs/differences.md, bug 8).
[[nodiscard]] LinkKey derive_link_key(std::string_view remote_id, std::string_view local_id,
                                      std::string_view buildkey);

// Perl's pack("H32", s): two characters a byte, high nibble first; a letter
// gives ((c & 15) + 9) & 15, anything else c & 15; missing nibbles are 0.
[[nodiscard]] LinkKey perl_pack_h32(std::string_view s) noexcept;

[[nodiscard]] std::string to_hex(const LinkKey& key);

} // namespace lonc
