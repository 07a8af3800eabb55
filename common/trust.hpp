// The endpoint's chain of checks, as pure functions over bytes: delegation → feed → manifest →
// torrent. Each returns a typed error naming the rule that failed; none touches disk or network.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/feed.hpp"
#include "common/manifest.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::core {

struct TrustRoot {
    std::vector<crypto::PublicKey> release_keys;  // pinned at install time
    std::size_t threshold = 1;
};

// Verifies the delegation envelope against the release keys and returns the feed key.
[[nodiscard]] Result<crypto::PublicKey> verify_delegation(std::string_view envelope_json,
                                                          const TrustRoot& root, std::int64_t now);

// What the endpoint remembers of the last feed it accepted (persisted across restarts).
struct FeedMemory {
    std::uint64_t sequence = 0;
    std::string payload_sha256;  // hex SHA-256 of the accepted feed payload
};

// Verifies a feed envelope: signed by the feed key, fresh, sequence not lower than the last one,
// and an equal sequence only with identical bytes (a re-signed feed always gets a new sequence).
[[nodiscard]] Result<Feed> verify_feed(std::string_view envelope_json,
                                       const crypto::PublicKey& feed_key, std::int64_t now,
                                       const FeedMemory& last, FeedMemory* accepted);

// Verifies a manifest envelope against the feed entry that announced it and the release keys:
// exact envelope hash, signature, id and sequence as announced, not expired, and not lower than
// a manifest already accepted for this id (`previous_sequence`).
[[nodiscard]] Result<Manifest> verify_manifest(std::string_view envelope_json,
                                               const FeedEntry& announced, const TrustRoot& root,
                                               std::int64_t now,
                                               std::optional<std::uint64_t> previous_sequence);

// What a torrent says about itself (filled from swarm::inspect_torrent).
struct TorrentFacts {
    std::string infohash_v2;
    std::string name;
    std::vector<std::pair<std::string, std::uint64_t>> files;  // path, size (sorted)
};

// The torrent must be exactly the one the manifest signed: info-hash, name, and the same files
// with the same sizes (no extra file, none missing).
[[nodiscard]] Result<void> check_torrent_matches(const Manifest& m, const TorrentFacts& t);

}  // namespace patchswarm::core
