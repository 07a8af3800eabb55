// IPv4 and IPv6 address literals, parsed and printed without the platform's inet_pton/inet_ntop
// (core/ stays portable). Exactly as strict as glibc's inet_pton, which
// tests/io/test_ip_address_oracle.cpp checks over a table and generated literals:
//   IPv4  four decimal octets 0..255, no leading zeros ("01"), nothing else ("1.2.3", "1.2.3.4."
//         and "0x1.2.3.4" are refused);
//   IPv6  RFC 4291 section 2.2: eight groups of 1..4 hex digits (either case), one "::" for one or
//         more zero groups, an embedded dotted IPv4 in place of the last two groups
//         ("::ffff:1.2.3.4", "64:ff9b::10.0.0.1"). No zone ids ("%eth0"), no brackets, no prefix.
// Output is RFC 5952 canonical text (lowercase, no leading zeros, the longest run of two or more
// zero groups, the first on a tie, as "::"), with inet_ntop's dotted tail for ::ffff:a.b.c.d and
// for the deprecated IPv4-compatible ::a.b.c.d, so printed addresses read as they did.
// Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace patchswarm::core {

using Ipv4Bytes = std::array<std::uint8_t, 4>;
using Ipv6Bytes = std::array<std::uint8_t, 16>;

// The address in network byte order, or nullopt when `text` is not exactly one literal.
std::optional<Ipv4Bytes> parse_ipv4(std::string_view text);
std::optional<Ipv6Bytes> parse_ipv6(std::string_view text);

std::string format_ipv4(const Ipv4Bytes& address);  // "10.0.0.1"
std::string format_ipv6(const Ipv6Bytes& address);  // "2001:db8::1"

}  // namespace patchswarm::core
