#include "core/path_rules.hpp"

#include <array>
#include <unordered_map>
#include <utility>

namespace patchswarm::core {

namespace {

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

bool is_ascii_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Lower case of one code point of U+0080..U+07FF. Every mapping stays in that range, so the
// folded UTF-8 keeps its length and a prefix of a folded path is the folded prefix.
char32_t fold_two_byte(char32_t cp) {
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)) return cp + 0x20;  // Latin-1 À..Þ
    if (cp == 0x178) return 0xFF;                                    // Ÿ
    // Latin Extended-A: pairs of capital (even) and small (odd), shifted by one in the middle.
    if ((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) ||
        (cp >= 0x14A && cp <= 0x177)) {
        return cp | 1;
    }
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) {
        return (cp % 2 == 1) ? cp + 1 : cp;
    }
    if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 0x20;  // Greek Α..Ϋ
    if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;                 // Cyrillic А..Я
    if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;                 // Cyrillic Ѐ..Џ
    return cp;
}

constexpr std::array<std::string_view, 6> kReservedNames{"CON", "PRN",    "AUX",
                                                         "NUL", "CONIN$", "CONOUT$"};

}  // namespace

bool is_windows_reserved_name(std::string_view name) {
    // Windows resolves the device before the extension and ignores spaces in front of it:
    // "nul.txt", "Con .tar.gz" and "COM1.log" all open a device.
    std::string_view base = name.substr(0, name.find('.'));
    while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
    for (std::string_view reserved : kReservedNames) {
        if (iequals_ascii(base, reserved)) return true;
    }
    if (base.size() < 4) return false;
    const std::string_view stem = base.substr(0, 3);
    if (!iequals_ascii(stem, "COM") && !iequals_ascii(stem, "LPT")) return false;
    const std::string_view digit = base.substr(3);
    if (digit.size() == 1) return digit[0] >= '0' && digit[0] <= '9';
    // Superscript one, two and three (U+00B9, U+00B2, U+00B3) in UTF-8.
    return digit == "\xc2\xb9" || digit == "\xc2\xb2" || digit == "\xc2\xb3";
}

Result<void> validate_windows_component(std::string_view part) {
    if (part.find('\\') != std::string_view::npos) {
        return fail(Errc::unsafe_path, "backslash in path (a folder separator on Windows)");
    }
    if (part.find(':') != std::string_view::npos) {
        return fail(Errc::unsafe_path,
                    "':' in name \"" + std::string(part) +
                        "\" (a drive letter or an NTFS alternate data stream on Windows)");
    }
    if (is_windows_reserved_name(part)) {
        return fail(Errc::unsafe_path,
                    "\"" + std::string(part) + "\" is a reserved device name on Windows");
    }
    if (!part.empty() && part != "." && part != ".." &&
        (part.back() == '.' || part.back() == ' ')) {
        return fail(Errc::unsafe_path, "name \"" + std::string(part) +
                                           "\" ends with a dot or space (Windows drops them)");
    }
    return {};
}

Result<void> validate_windows_path(std::string_view path) {
    if (path.starts_with("\\\\") || path.starts_with("//") || path.starts_with("\\/") ||
        path.starts_with("/\\")) {
        return fail(Errc::unsafe_path, "UNC path (\\\\server\\share) is not allowed");
    }
    const std::string_view first = path.substr(0, path.find('/'));
    if (first.size() >= 2 && is_ascii_letter(first[0]) && first[1] == ':') {
        return fail(Errc::unsafe_path,
                    "drive letter \"" + std::string(first.substr(0, 2)) + "\" is not allowed");
    }
    std::size_t start = 0;
    for (;;) {
        const std::size_t slash = path.find('/', start);
        if (auto r = validate_windows_component(path.substr(start, slash - start)); !r) return r;
        if (slash == std::string_view::npos) return {};
        start = slash + 1;
    }
}

std::string fold_case_for_windows(std::string_view text) {
    std::string out(text);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto b0 = static_cast<unsigned char>(out[i]);
        if (b0 < 0x80) {
            out[i] = ascii_lower(out[i]);
            continue;
        }
        if (b0 < 0xC2 || b0 > 0xDF || i + 1 >= out.size()) continue;
        const auto b1 = static_cast<unsigned char>(out[i + 1]);
        if ((b1 & 0xC0) != 0x80) continue;
        const char32_t folded = fold_two_byte((char32_t(b0 & 0x1F) << 6) | (b1 & 0x3F));
        out[i] = static_cast<char>(0xC0 | (folded >> 6));
        out[i + 1] = static_cast<char>(0x80 | (folded & 0x3F));
        ++i;
    }
    return out;
}

std::optional<CaseCollision> find_case_collision(std::span<const std::string_view> paths) {
    // Folded name of every file and every folder on the way → the spelling first seen, and
    // the index of the path it came from.
    std::unordered_map<std::string, std::pair<std::string_view, std::size_t>> seen;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        const std::string_view path = paths[i];
        const std::string folded = fold_case_for_windows(path);
        for (std::size_t end = path.find('/');; end = path.find('/', end + 1)) {
            const std::string_view name = path.substr(0, end);
            auto [it, inserted] = seen.try_emplace(folded.substr(0, name.size()), name, i);
            if (!inserted && it->second.first != name) {
                return CaseCollision{it->second.second, i, std::string(it->second.first),
                                     std::string(name)};
            }
            if (end == std::string_view::npos) break;
        }
    }
    return std::nullopt;
}

}  // namespace patchswarm::core
