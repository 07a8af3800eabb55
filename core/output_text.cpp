#include "core/output_text.hpp"

#include <algorithm>
#include <vector>

namespace patchswarm::core {

namespace {

// Length of the valid UTF-8 sequence at in[i], 0 if none starts there (overlong forms, UTF-16
// surrogates and code points above U+10FFFF are invalid).
std::size_t utf8_length(std::string_view in, std::size_t i) {
    const auto c = static_cast<unsigned char>(in[i]);
    std::size_t len = 0;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
    } else {
        return 0;
    }
    if (i + len > in.size()) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        if ((static_cast<unsigned char>(in[i + k]) & 0xC0) != 0x80) return 0;
    }
    const auto c1 = static_cast<unsigned char>(in[i + 1]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 >= 0x90)) {
        return 0;
    }
    return len;
}

// Skips the escape sequence starting at in[i] (in[i] == ESC); returns the index after it.
std::size_t skip_escape(std::string_view in, std::size_t i) {
    if (i + 1 >= in.size()) return i + 1;
    const char kind = in[i + 1];
    if (kind == '[') {  // CSI: parameters and intermediates, then one final byte 0x40..0x7E
        std::size_t k = i + 2;
        while (k < in.size() && (static_cast<unsigned char>(in[k]) < 0x40 ||
                                 static_cast<unsigned char>(in[k]) > 0x7E)) {
            ++k;
        }
        return std::min(k + 1, in.size());
    }
    if (kind == ']') {  // OSC: up to BEL or ESC '\'
        for (std::size_t k = i + 2; k < in.size(); ++k) {
            if (in[k] == '\a') return k + 1;
            if (in[k] == '\x1b' && k + 1 < in.size() && in[k + 1] == '\\') return k + 2;
        }
        return in.size();
    }
    return i + 2;  // a two-byte escape
}

std::string replace_paths(std::string_view raw, std::span<const std::string> paths) {
    std::vector<std::string_view> sorted;
    for (const auto& p : paths) {
        if (!p.empty()) sorted.emplace_back(p);
    }
    std::sort(sorted.begin(), sorted.end(),
              [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
    std::string out;
    out.reserve(raw.size());
    std::size_t i = 0;
    while (i < raw.size()) {
        bool replaced = false;
        for (const auto p : sorted) {
            if (raw.compare(i, p.size(), p) == 0) {
                out += kStateDirPlaceholder;
                i += p.size();
                replaced = true;
                break;
            }
        }
        if (!replaced) out.push_back(raw[i++]);
    }
    return out;
}

}  // namespace

std::string sanitize_output(std::string_view raw, std::span<const std::string> private_paths,
                            std::size_t max_bytes) {
    const std::string text = replace_paths(raw, private_paths);
    std::vector<std::string> lines(1);
    std::size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        if (c == '\x1b') {
            i = skip_escape(text, i);
            continue;
        }
        if (c == '\n' || c == '\r') {
            lines.emplace_back();
            ++i;
            continue;
        }
        if (c == '\t') {
            lines.back().push_back(' ');
            ++i;
            continue;
        }
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) {
            ++i;
            continue;
        }
        const std::size_t len = utf8_length(text, i);
        if (len == 0) {
            lines.back().push_back('?');
            ++i;
            continue;
        }
        // C1 controls (U+0080..U+009F) are as dangerous on a terminal as C0 ones.
        const bool c1 = len == 2 && u == 0xC2 && static_cast<unsigned char>(text[i + 1]) <= 0x9F;
        if (!c1) lines.back().append(text, i, len);
        i += len;
    }
    std::string out;
    for (auto& line : lines) {
        const auto end = line.find_last_not_of(' ');
        if (end == std::string::npos) continue;
        line.resize(end + 1);
        if (!out.empty()) out += " | ";
        out += line;
    }
    if (out.size() <= max_bytes) return out;
    std::size_t start = out.size() - max_bytes;
    // Do not start inside a multi-byte character.
    while (start < out.size() && (static_cast<unsigned char>(out[start]) & 0xC0) == 0x80) ++start;
    return "..." + out.substr(start);
}

}  // namespace patchswarm::core
