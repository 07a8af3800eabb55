// Small pure helpers on text shared by parsers (site specs, HTTP headers, token files, hex).
#pragma once

#include <string_view>

namespace patchswarm {

// `s` without leading and trailing characters from `blanks` (by default spaces and tabs).
inline std::string_view trim(std::string_view s, std::string_view blanks = " \t") {
    const auto first = s.find_first_not_of(blanks);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

// True when `s` is exactly `length` lowercase hex digits (the one spelling of hashes and keys).
inline bool is_lower_hex(std::string_view s, std::size_t length) {
    if (s.size() != length) return false;
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace patchswarm
