// Enrolment tokens (docs/PROTOCOL.md, "Enrolment"). A token is "pst_" followed by the hex of a
// 32-byte Ed25519 seed. The seeder stores only the token's public key; an endpoint proves it
// holds the token by signing its enrolment request with the token's key, so the token itself
// never crosses the network: someone who records an enrolment (plain HTTP) learns nothing that
// enrols another device, and a copy of fleet.db enrols nobody either.
//
// Threading: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "base/error.hpp"
#include "core/json_strict.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::core {

inline constexpr std::string_view kEnrolTokenPrefix = "pst_";
inline constexpr std::size_t kEnrolTokenSeedBytes = 32;

// A new random token.
inline std::string make_enrol_token() {
    return std::string(kEnrolTokenPrefix) +
           crypto::to_hex(crypto::random_bytes(kEnrolTokenSeedBytes));
}

// The key pair a token stands for. Errc::invalid_argument for anything but "pst_" + 64
// lowercase hex digits (surrounding whitespace is the caller's to trim).
[[nodiscard]] inline Result<crypto::KeyPair> enrol_token_key(std::string_view token) {
    const auto refuse = [] {
        return fail(Errc::invalid_argument,
                    "not an enrolment token (expected pst_ and 64 hex digits, from "
                    "`patchswarm-seeder token create`)");
    };
    if (!token.starts_with(kEnrolTokenPrefix)) return refuse();
    const std::string_view hex = token.substr(kEnrolTokenPrefix.size());
    if (!core::json_strict::is_lower_hex(hex, 2 * kEnrolTokenSeedBytes)) return refuse();
    auto seed = crypto::from_hex(hex);
    if (!seed) return refuse();
    return crypto::keypair_from_seed(
        std::span<const std::uint8_t, kEnrolTokenSeedBytes>(seed->data(), kEnrolTokenSeedBytes));
}

}  // namespace patchswarm::core
