// The root document: which keys may sign what (docs/PROTOCOL.md, "Root document"). Pure model and
// validation; no I/O. The chain checks (rotation, thresholds, freeze) are in core/trust.hpp.
//
// A root names the keys of three roles, each with a threshold m of n:
//   root     offline keys; sign the root document itself (and its successor);
//   release  offline or HSM-held keys; sign release manifests;
//   feed     the seeder's online key; signs only the feed.
// An endpoint pins one root at install time and follows each later version in order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/envelope.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::core {

// Bound on the signed root envelope (the document is unsigned bytes until verified).
inline constexpr std::size_t kMaxRootEnvelopeBytes = 64 * 1024;
inline constexpr std::size_t kMaxRootBytes = 32 * 1024;
inline constexpr std::size_t kMaxRootKeys = 32;
// A rotation carries the old and the new root thresholds in one envelope of at most
// core::kMaxSignatures signatures.
inline constexpr std::uint32_t kMaxThreshold = core::kMaxSignatures / 2;
// Root versions an endpoint follows in one update cycle; the rest wait for the next cycle, so a
// hostile server cannot keep an endpoint fetching roots forever.
inline constexpr std::size_t kMaxRootUpdatesPerCycle = 32;

struct RoleKeys {
    std::vector<std::string> keyids;  // sorted, unique; each in RootDocument::keys
    std::uint32_t threshold = 1;      // 1..keyids.size()

    bool operator==(const RoleKeys&) const = default;
};

struct RootDocument {
    int format = 1;
    std::uint64_t version = 1;                // 1 for the first root; each rotation exactly +1
    std::int64_t expires = 0;                 // unix seconds
    std::map<std::string, std::string> keys;  // keyid (hex SHA-256 of key) -> public key hex
    RoleKeys root;
    RoleKeys release;
    RoleKeys feed;

    bool operator==(const RootDocument&) const = default;
};

// The signing keys of one role: its public keys (from `keys`) and threshold.
struct KeySet {
    std::vector<crypto::PublicKey> keys;
    std::size_t threshold = 1;
};

// Canonical compact JSON (fixed key order); parse_root(serialize_root(r)) == r.
std::string serialize_root(const RootDocument& r);
// format 1; version >= 1; every key id is the SHA-256 of its 64-hex public key; at most
// kMaxRootKeys keys; every role lists known, sorted, unique key ids and 1 <= threshold <= n
// (and <= kMaxThreshold);
// the feed role shares no key with the root or release roles (the online key must never be able
// to sign a manifest or a root). Errc::malformed / Errc::too_large.
[[nodiscard]] Result<void> validate_root(const RootDocument& r);
// Errc::too_large over kMaxRootBytes (before parsing); Errc::malformed for bad JSON, duplicate
// or unknown keys, missing/mistyped fields; then validate_root.
[[nodiscard]] Result<RootDocument> parse_root(std::string_view json);
// Errc::expired once now_unix >= r.expires.
[[nodiscard]] Result<void> check_root_fresh(const RootDocument& r, std::int64_t now_unix);

// The public keys and threshold of `role` (one of r.root, r.release, r.feed). Only meaningful
// for a validated root.
KeySet key_set(const RootDocument& r, const RoleKeys& role);

// Builds a role from public keys (sorted ids), adding the keys to r.keys.
RoleKeys add_role_keys(RootDocument& r, std::span<const crypto::PublicKey> keys,
                       std::uint32_t threshold);

// The HTTP route of one root version, "/v1/root/<N>.json", and its inverse: the version for a
// route of exactly that form (decimal, no leading zero, 1..2^63), else nullopt.
std::string root_route(std::uint64_t version);
std::optional<std::uint64_t> root_route_version(std::string_view path);

}  // namespace patchswarm::core
