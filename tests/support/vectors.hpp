// Loads the test vectors in tests/data/vectors/ (TAB-separated, '#' lines
// are comments, empty fields are real).
#pragma once

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lonc::test {

inline std::vector<std::vector<std::string>> load_tsv(const std::string& name) {
    const std::string path = std::string(LONC_TEST_DATA) + "/vectors/" + name;
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    std::vector<std::vector<std::string>> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line.front() == '#') {
            continue;
        }
        std::vector<std::string> fields;
        std::string::size_type start = 0;
        for (;;) {
            const auto tab = line.find('\t', start);
            fields.push_back(line.substr(start, tab - start));
            if (tab == std::string::npos) {
                break;
            }
            start = tab + 1;
        }
        rows.push_back(std::move(fields));
    }
    return rows;
}

inline std::string unhex(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    }
    return out;
}

} // namespace lonc::test
