// The signed feed: what is active now. Pure model + validation; no I/O.
//
// The feed is signed by the seeder's online feed key, which the root document names
// (core/root.hpp). It lists manifests by hash; each must still verify against a threshold of
// the release keys, so a feed can announce, delay or withhold a release, never introduce one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::core {

inline constexpr std::size_t kMaxFeedBytes = 256 * 1024;
inline constexpr std::size_t kMaxFeedReleases = 1000;
// open_rings counts the manifest's rings (at most 16, core::kMaxRings) plus the implicit last one.
inline constexpr std::uint32_t kMaxOpenRings = 17;

// At most this many devices in one retry request; more is `retry --failed`.
inline constexpr std::size_t kMaxRetryDevices = 256;

// `patchswarm-seeder retry`: IT asks endpoints whose release failed (also those that gave up) to
// try again from attempt 1. Only the feed key vouches for it, which is the point: only IT's online
// key can ask. Each endpoint honours a generation once.
struct RetryRequest {
    std::uint32_t generation = 0;      // 1.., grows with every retry of the release
    std::vector<std::string> devices;  // device ids (32 lowercase hex); empty: every endpoint

    bool operator==(const RetryRequest&) const = default;
};

struct FeedEntry {
    std::string id;
    std::uint64_t sequence = 0;   // the manifest's sequence
    std::string manifest_sha256;  // hex SHA-256 of the manifest *envelope* bytes as served
    // Staged rollout: rings [0, open_rings) of the manifest's rollout are open (the implicit last
    // ring has index rollout.rings.size()). Absent: every ring is open (a release without rings,
    // or a feed from a seeder that does not stage). Only the seeder's feed key vouches for it,
    // which is enough: ring membership is in the release-signed manifest, and the signed
    // deadline opens every ring whatever the feed says. 1..kMaxOpenRings.
    std::optional<std::uint32_t> open_rings;
    std::optional<RetryRequest> retry;  // absent: no retry asked for

    bool operator==(const FeedEntry&) const = default;
};

struct Feed {
    int format = 1;
    std::string repository;
    std::uint64_t sequence = 0;  // strictly increases with every re-signing
    std::int64_t issued = 0;     // unix seconds
    std::int64_t expires = 0;    // unix seconds
    std::vector<FeedEntry> releases;
    std::vector<std::string> halted;  // release ids halted (no further installs)

    bool operator==(const Feed&) const = default;
};

// Canonical compact JSON (fixed key order); parse_feed(serialize_feed(f)) == f.
std::string serialize_feed(const Feed& f);
// Checks every field and bound: format 1, valid repository and release ids (unique within
// releases and within halted), lowercase 64-hex manifest hashes, open_rings 1..kMaxOpenRings
// when present, a retry's generation >= 1 and its devices unique 32-hex ids (at most
// kMaxRetryDevices), expires > issued, at most kMaxFeedReleases entries in each list
// (Errc::too_large).
[[nodiscard]] Result<void> validate_feed(const Feed& f);
// Errc::too_large over kMaxFeedBytes (before parsing); Errc::malformed for bad JSON, duplicate or
// unknown keys, missing/mistyped fields; then validate_feed. Messages name the field.
[[nodiscard]] Result<Feed> parse_feed(std::string_view json);
// Errc::expired once now_unix >= f.expires.
[[nodiscard]] Result<void> check_feed_fresh(const Feed& f, std::int64_t now_unix);

}  // namespace patchswarm::core
