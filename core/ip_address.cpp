// The parsers follow the structure of glibc's inet_pton4/inet_pton6 (resolv/inet_pton.c) on
// purpose: being exactly as strict as the system parser is the point, and the oracle test in
// tests/io/ holds them to it.
#include "core/ip_address.hpp"

#include <algorithm>
#include <cstddef>

namespace patchswarm::core {
namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<Ipv4Bytes> parse_ipv4(std::string_view text) {
    Ipv4Bytes out{};
    std::size_t octet = 0;
    bool in_octet = false;  // at least one digit of the current octet seen
    unsigned value = 0;
    for (const char c : text) {
        if (c >= '0' && c <= '9') {
            if (in_octet && value == 0) return std::nullopt;  // a leading zero
            value = value * 10 + static_cast<unsigned>(c - '0');
            if (value > 255) return std::nullopt;
            in_octet = true;
        } else if (c == '.' && in_octet && octet < 3) {
            out[octet++] = static_cast<std::uint8_t>(value);
            value = 0;
            in_octet = false;
        } else {
            return std::nullopt;
        }
    }
    if (!in_octet || octet != 3) return std::nullopt;
    out[3] = static_cast<std::uint8_t>(value);
    return out;
}

std::optional<Ipv6Bytes> parse_ipv6(std::string_view text) {
    Ipv6Bytes out{};
    std::size_t filled = 0;          // bytes of `out` written so far
    std::optional<std::size_t> gap;  // where "::" stands, in bytes
    std::size_t digits = 0;          // hex digits of the current group
    unsigned value = 0;
    std::size_t i = 0;
    if (text.empty()) return std::nullopt;
    if (text[0] == ':') {  // a leading ':' only as part of "::"
        if (text.size() < 2 || text[1] != ':') return std::nullopt;
        i = 1;
    }
    std::size_t group_start = i;
    while (i < text.size()) {
        const char c = text[i++];
        if (const int d = hex_digit(c); d >= 0) {
            if (digits == 4) return std::nullopt;
            value = (value << 4) | static_cast<unsigned>(d);
            ++digits;
            continue;
        }
        if (c == ':') {
            group_start = i;
            if (digits == 0) {  // the second ':' of "::"
                if (gap) return std::nullopt;
                gap = filled;
                continue;
            }
            if (i == text.size()) return std::nullopt;  // a trailing single ':'
            if (filled + 2 > out.size()) return std::nullopt;
            out[filled++] = static_cast<std::uint8_t>(value >> 8);
            out[filled++] = static_cast<std::uint8_t>(value & 0xff);
            digits = 0;
            value = 0;
            continue;
        }
        // A dotted IPv4 ends the literal: it must fit the last four bytes and run to the end.
        if (c == '.' && filled + 4 <= out.size()) {
            const auto v4 = parse_ipv4(text.substr(group_start));
            if (!v4) return std::nullopt;
            std::copy(v4->begin(), v4->end(), out.begin() + static_cast<std::ptrdiff_t>(filled));
            filled += 4;
            digits = 0;
            i = text.size();
            break;
        }
        return std::nullopt;
    }
    if (digits > 0) {
        if (filled + 2 > out.size()) return std::nullopt;
        out[filled++] = static_cast<std::uint8_t>(value >> 8);
        out[filled++] = static_cast<std::uint8_t>(value & 0xff);
    }
    if (gap) {
        if (filled == out.size()) return std::nullopt;  // "::" must stand for at least one group
        const std::size_t tail = filled - *gap;
        std::copy_backward(out.begin() + static_cast<std::ptrdiff_t>(*gap),
                           out.begin() + static_cast<std::ptrdiff_t>(filled), out.end());
        std::fill(out.begin() + static_cast<std::ptrdiff_t>(*gap),
                  out.end() - static_cast<std::ptrdiff_t>(tail), std::uint8_t{0});
        filled = out.size();
    }
    if (filled != out.size()) return std::nullopt;
    return out;
}

std::string format_ipv4(const Ipv4Bytes& address) {
    std::string out;
    for (std::size_t i = 0; i < address.size(); ++i) {
        if (i > 0) out.push_back('.');
        out += std::to_string(address[i]);
    }
    return out;
}

std::string format_ipv6(const Ipv6Bytes& address) {
    std::array<unsigned, 8> words{};
    for (std::size_t i = 0; i < words.size(); ++i) {
        words[i] = (static_cast<unsigned>(address[2 * i]) << 8) | address[2 * i + 1];
    }
    // The longest run of zero words, the first of equal ones; a single zero word stays "0".
    std::size_t best_start = 0;
    std::size_t best_length = 0;
    for (std::size_t i = 0; i < words.size();) {
        if (words[i] != 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < words.size() && words[j] == 0) ++j;
        if (j - i > best_length) {
            best_start = i;
            best_length = j - i;
        }
        i = j;
    }
    if (best_length < 2) best_length = 0;

    constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (best_length > 0 && i >= best_start && i < best_start + best_length) {
            if (i == best_start) out += "::";
            continue;
        }
        if (i > 0 && !(best_length > 0 && i == best_start + best_length)) out.push_back(':');
        // ::a.b.c.d (IPv4-compatible) and ::ffff:a.b.c.d (IPv4-mapped) end in dotted form.
        if (i == 6 && best_start == 0 &&
            (best_length == 6 || (best_length == 5 && words[5] == 0xffff))) {
            out += format_ipv4({address[12], address[13], address[14], address[15]});
            break;
        }
        bool leading = true;
        for (int shift = 12; shift >= 0; shift -= 4) {
            const unsigned nibble = (words[i] >> shift) & 0xf;
            if (leading && nibble == 0 && shift > 0) continue;
            leading = false;
            out.push_back(kHex[nibble]);
        }
    }
    return out;
}

}  // namespace patchswarm::core
