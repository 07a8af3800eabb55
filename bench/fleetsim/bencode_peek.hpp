// Just enough bencode (BEP 3) to read a tracker answer's top-level "interval" and "failure
// reason": a bounded walk over one dictionary, nothing allocated. Malformed input reads as
// "not there".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace patchswarm::fleetsim::bencode {

namespace detail {

// Skips one value at `pos` (depth-limited); false when malformed.
inline bool skip(std::string_view s, std::size_t& pos, int depth = 0) {
    if (pos >= s.size() || depth > 32) return false;
    const char c = s[pos];
    if (c == 'i') {
        const auto end = s.find('e', pos);
        if (end == std::string_view::npos) return false;
        pos = end + 1;
        return true;
    }
    if (c == 'l' || c == 'd') {
        ++pos;
        while (pos < s.size() && s[pos] != 'e') {
            if (!skip(s, pos, depth + 1)) return false;
        }
        if (pos >= s.size()) return false;
        ++pos;
        return true;
    }
    if (c >= '0' && c <= '9') {
        std::uint64_t len = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            len = len * 10 + static_cast<std::uint64_t>(s[pos++] - '0');
            if (len > s.size()) return false;
        }
        if (pos >= s.size() || s[pos] != ':' || len > s.size() - pos - 1) return false;
        pos += 1 + len;
        return true;
    }
    return false;
}

inline std::optional<std::string_view> string_at(std::string_view s, std::size_t& pos) {
    const std::size_t start = pos;
    if (!skip(s, pos)) return std::nullopt;
    const auto colon = s.find(':', start);
    if (colon == std::string_view::npos || colon >= pos) return std::nullopt;
    return s.substr(colon + 1, pos - colon - 1);
}

// Position of the value of top-level `key`, or npos.
inline std::size_t find(std::string_view s, std::string_view key) {
    if (s.empty() || s[0] != 'd') return std::string_view::npos;
    std::size_t pos = 1;
    while (pos < s.size() && s[pos] != 'e') {
        if (s[pos] < '0' || s[pos] > '9') return std::string_view::npos;
        const auto k = string_at(s, pos);
        if (!k) return std::string_view::npos;
        if (*k == key) return pos;
        if (!skip(s, pos)) return std::string_view::npos;
    }
    return std::string_view::npos;
}

}  // namespace detail

inline bool has_key(std::string_view s, std::string_view key) {
    return detail::find(s, key) != std::string_view::npos;
}

inline std::optional<std::int64_t> int_value(std::string_view s, std::string_view key) {
    const auto pos = detail::find(s, key);
    if (pos == std::string_view::npos || s[pos] != 'i') return std::nullopt;
    std::int64_t v = 0;
    std::size_t p = pos + 1;
    if (p >= s.size() || s[p] < '0' || s[p] > '9') return std::nullopt;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9' && v < (1LL << 40))
        v = v * 10 + (s[p++] - '0');
    if (p >= s.size() || s[p] != 'e') return std::nullopt;
    return v;
}

}  // namespace patchswarm::fleetsim::bencode
