// The enc: codec. Any reply line from lond goes through decode: it must
// never crash or read out of bounds, must leave the output untouched on
// error, and whatever decodes is a line looks_encrypted() accepts. Encode
// then decode returns the input (the round trip), and key derivation takes
// any ids and buildkey.
#include "lonc/core/cipher.hpp"
#include "lonc/core/keys.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    // Key material from the input too: remote id, local id and buildkey are
    // the first three of four NUL-separated fields; the rest is the line.
    std::string_view fields[4];
    std::string_view rest = in;
    for (int i = 0; i < 3; ++i) {
        const auto nul = rest.find('\0');
        if (nul == std::string_view::npos) {
            fields[i] = {};
            continue;
        }
        fields[i] = rest.substr(0, nul);
        rest.remove_prefix(nul + 1);
    }
    fields[3] = rest;
    const auto key = lonc::derive_link_key(fields[0], fields[1], fields[2]);
    FUZZ_CHECK(lonc::to_hex(key).size() == 32);
    const lonc::LinkCipher cipher(key);

    // Decode the whole input and the tail as reply lines.
    for (const std::string_view line : {in, fields[3]}) {
        std::string out = "prefix";
        const auto err = cipher.decode(line, out);
        FUZZ_CHECK(lonc::to_string(err) != nullptr);
        if (err == lonc::DecodeError::none) {
            FUZZ_CHECK(lonc::looks_encrypted(line));
            FUZZ_CHECK(out.compare(0, 6, "prefix") == 0);
            // LEN bytes of plaintext: re-encoding them decodes to the same.
            const std::string plain = out.substr(6);
            std::string wire;
            cipher.encode(plain, wire);
            std::string back;
            FUZZ_CHECK(cipher.decode(wire, back) == lonc::DecodeError::none);
            FUZZ_CHECK(back == plain);
        } else {
            FUZZ_CHECK(out == "prefix");
        }
    }

    // Round trip of the tail as a command: encode, then decode.
    std::string wire;
    cipher.encode(fields[3], wire);
    FUZZ_CHECK(lonc::looks_encrypted(wire));
    FUZZ_CHECK(wire.find('\n') == std::string::npos);
    const auto colon = wire.find(':', 4);
    FUZZ_CHECK(wire.size() - colon - 1 == lonc::enc_blocks(fields[3].size()) * 16);
    std::string back;
    FUZZ_CHECK(cipher.decode(wire, back) == lonc::DecodeError::none);
    FUZZ_CHECK(back == fields[3]);
    return 0;
}
