// core/ip_address.hpp against the platform's inet_pton/inet_ntop as an oracle: the pure parser
// must accept exactly what glibc accepts, to the same bytes, and print what inet_ntop prints.
// A table of edge cases, then a few thousand literals from a fixed-seed generator (std::mt19937's
// sequence is fixed by the standard, so a failure reproduces). In tests/io/ because it calls the
// platform; the code under test is core.
#include <arpa/inet.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/ip_address.hpp"
#include "core/sites.hpp"

namespace core = patchswarm::core;

namespace {

std::optional<core::Ipv4Bytes> oracle_v4(const std::string& text) {
    core::Ipv4Bytes out{};
    if (::inet_pton(AF_INET, text.c_str(), out.data()) != 1) return std::nullopt;
    return out;
}

std::optional<core::Ipv6Bytes> oracle_v6(const std::string& text) {
    core::Ipv6Bytes out{};
    if (::inet_pton(AF_INET6, text.c_str(), out.data()) != 1) return std::nullopt;
    return out;
}

std::string oracle_format(const core::Ipv6Bytes& bytes) {
    char buf[INET6_ADDRSTRLEN] = {};
    REQUIRE(::inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf) != nullptr);
    return buf;
}

// Parses `text` both ways and compares; returns whether it was valid IPv6 (for counting).
bool agrees(const std::string& text) {
    INFO("literal '" << text << "'");
    const auto v4 = core::parse_ipv4(text);
    const auto v4_oracle = oracle_v4(text);
    CHECK(v4.has_value() == v4_oracle.has_value());
    if (v4 && v4_oracle) {
        CHECK(*v4 == *v4_oracle);
        CHECK(core::format_ipv4(*v4) == text);  // a valid IPv4 literal has one spelling
    }
    const auto v6 = core::parse_ipv6(text);
    const auto v6_oracle = oracle_v6(text);
    CHECK(v6.has_value() == v6_oracle.has_value());
    if (v6 && v6_oracle) {
        CHECK(*v6 == *v6_oracle);
        CHECK(core::format_ipv6(*v6) == oracle_format(*v6));
    }
    return v6_oracle.has_value();
}

// The ways an address is written: groups with and without leading zeros, either case, a dotted
// tail or not, and "::" in place of a random run of fields (zero or not, empty or not: most
// choices give a valid literal, the others an invalid one close to valid).
std::string write_v6(const core::Ipv6Bytes& bytes, std::mt19937& rng) {
    std::uniform_int_distribution<int> any(0, 9);
    const bool dotted = any(rng) < 3;
    const bool upper = any(rng) == 0;
    std::vector<std::string> fields;
    for (int i = 0; i < (dotted ? 6 : 8); ++i) {
        const unsigned word = (static_cast<unsigned>(bytes[2 * i]) << 8) | bytes[2 * i + 1];
        char buf[8];
        std::snprintf(buf, sizeof buf, any(rng) < 5 ? (upper ? "%X" : "%x") : "%04x", word);
        fields.emplace_back(buf);
    }
    if (dotted) {
        fields.push_back(std::to_string(bytes[12]) + "." + std::to_string(bytes[13]) + "." +
                         std::to_string(bytes[14]) + "." + std::to_string(bytes[15]));
    }
    const auto join = [&](std::size_t from, std::size_t to) {
        std::string out;
        for (std::size_t k = from; k < to; ++k) out += (k > from ? ":" : "") + fields[k];
        return out;
    };
    if (any(rng) < 4) return join(0, fields.size());
    const auto start = std::uniform_int_distribution<std::size_t>(0, fields.size())(rng);
    const auto length = std::uniform_int_distribution<std::size_t>(0, fields.size() - start)(rng);
    return join(0, start) + "::" + join(start + length, fields.size());
}

core::Ipv6Bytes random_v6(std::mt19937& rng) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> any(0, 9);
    core::Ipv6Bytes bytes{};
    // Mostly zero words, so that runs of zeros (the "::" choices) are common.
    for (std::size_t w = 0; w < 8; ++w) {
        if (any(rng) < 5) continue;
        bytes[2 * w] = static_cast<std::uint8_t>(any(rng) < 5 ? 0 : byte(rng));
        bytes[2 * w + 1] = static_cast<std::uint8_t>(byte(rng));
    }
    if (any(rng) == 0) {  // IPv4-mapped
        bytes = {};
        bytes[10] = bytes[11] = 0xff;
        for (int i = 12; i < 16; ++i) bytes[i] = static_cast<std::uint8_t>(byte(rng));
    }
    return bytes;
}

// One random edit: delete, insert or replace a character from the literal alphabet.
std::string mutate(std::string text, std::mt19937& rng) {
    static constexpr std::string_view kAlphabet = "0123456789abcdefABCDEFgx:.:.%/ ";
    std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
    const std::size_t at = std::uniform_int_distribution<std::size_t>(0, text.size())(rng);
    switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
        case 0:
            if (at < text.size()) text.erase(at, 1);
            break;
        case 1:
            text.insert(at, 1, kAlphabet[pick(rng)]);
            break;
        default:
            if (at < text.size()) text[at] = kAlphabet[pick(rng)];
    }
    return text;
}

}  // namespace

TEST_CASE("the IP literal parser accepts exactly what inet_pton accepts: the table", "[io]") {
    const std::vector<std::string> table = {
        // IPv4
        "0.0.0.0", "255.255.255.255", "10.0.0.1", "1.2.3.4", "256.1.1.1", "1.2.3", "1.2.3.4.",
        ".1.2.3.4", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "0.0.0.00", "1..2.3", "1.2.3.4 ",
        " 1.2.3.4", "0x1.2.3.4", "1.2.3.-4", "1.2.3.+4", "4294967295", "1.2.3.256", "999.1.1.1", "",
        // IPv6
        "::", "::1", "1::", "::ffff:1.2.3.4", "::FFFF:10.0.0.1", "::1.2.3.4", "64:ff9b::10.0.0.1",
        "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
        "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6::8", "1::2::3",
        ":::", ":1::", "1:", ":1", "1::2:", "2001:db8::1", "2001:DB8:0:0:0:0:0:1",
        "2001:0db8:0000:0000:0000:0000:0000:0001", "00000::1", "12345::", "fffff::", "g::", "::g",
        "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5::1.2.3.4",
        "1:2:3:4:5:6::1.2.3.4", "::1.2.3", "::1.2.3.4.5", "::01.2.3.4", "::256.1.1.1",
        "::1.2.3.4:1", "1.2.3.4::", "::a.2.3.4", "fe80::1%eth0", "[::1]", "::1/128", "::1 ", " ::1",
        "1:2:3:4:5:6:7:8::", "::0:0:0:0:0:0:0", "0:0:0:0:0:0:0:0", "0::0", "::ffff:0:0",
        "1:0:0:1:0:0:0:1", "1:0:0:0:1:0:0:1", "0:0:1:0:0:0:0:0", "::ffff", "::ffff:1:2",
        "::0.0.0.1", "::0.0.1.0"};
    for (const auto& text : table) agrees(text);
}

TEST_CASE(
    "the IP literal parser and formatter agree with inet_pton/inet_ntop on generated "
    "literals",
    "[io]") {
    std::mt19937 rng(20261124);
    std::size_t valid = 0;
    std::size_t total = 0;
    for (int i = 0; i < 4000; ++i) {
        const auto bytes = random_v6(rng);
        // The formatter against inet_ntop, and our own output parses back to the same bytes.
        const std::string canonical = core::format_ipv6(bytes);
        REQUIRE(canonical == oracle_format(bytes));
        REQUIRE(core::parse_ipv6(canonical) == bytes);
        std::string text = write_v6(bytes, rng);
        for (int edits = std::uniform_int_distribution<int>(0, 3)(rng); edits > 0; --edits) {
            if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) text = mutate(text, rng);
        }
        valid += agrees(text) ? 1 : 0;
        ++total;
        // IPv4 literals, written straight or with one edit.
        std::string v4 = std::to_string(bytes[12]) + "." + std::to_string(bytes[13]) + "." +
                         std::to_string(bytes[14]) + "." + std::to_string(bytes[15]);
        if (i % 2 == 1) v4 = mutate(v4, rng);
        agrees(v4);
        ++total;
    }
    INFO(valid << " of " << total << " generated literals were valid IPv6");
    // The generator must exercise both sides of the parser, not only one.
    CHECK(valid > 1000);
    CHECK(valid < 3500);
}

TEST_CASE("parse_ip and to_string of core/sites.hpp keep their forms without inet_pton", "[io]") {
    const auto mapped = core::parse_ip("::ffff:10.0.0.1");
    REQUIRE(mapped);
    CHECK_FALSE(mapped->v6);
    CHECK(core::to_string(*mapped) == "10.0.0.1");
    const auto v6 = core::parse_ip("2001:0DB8:0:0::0:1");
    REQUIRE(v6);
    CHECK(core::to_string(*v6) == "2001:db8::1");
    CHECK_FALSE(core::parse_ip(std::string(46, '1')));
    const std::string longest = "0000:0000:0000:0000:0000:ffff:255.255.255.255";  // 45
    const auto longest_ip = core::parse_ip(longest);
    REQUIRE(longest_ip);
    CHECK(core::to_string(*longest_ip) == "255.255.255.255");
    CHECK_FALSE(core::parse_ip("0" + longest));
    // inet_pton stopped at a NUL, so the old parse_ip took "1.2.3.4\0x" for 1.2.3.4.
    CHECK_FALSE(core::parse_ip(std::string_view("1.2.3.4\0x", 9)));
}
