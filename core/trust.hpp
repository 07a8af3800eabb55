// The endpoint's chain of checks, as pure functions over bytes: root (rotation) → feed →
// manifest → torrent. Each returns a typed error naming the rule that failed; none touches disk or
// network.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::core {

// The keys an endpoint trusts for releases and feeds, taken from its current root document.
struct TrustRoot {
    KeySet release;
    KeySet feed;
};

TrustRoot trust_of(const RootDocument& root);

// ---- root documents (TUF-style rotation, see docs/PROTOCOL.md "Root document") ----------------

// The root an endpoint pins at install time: a root envelope signed by a threshold of its own
// root keys. Its expiry is not checked here: a pinned root may be old, the update cycle walks to
// the newest root and checks that one (check_root_fresh).
[[nodiscard]] Result<RootDocument> verify_pinned_root(std::string_view envelope_json);

// One rotation step: `envelope_json` must hold version trusted.version + 1 (Errc::rollback if
// lower or equal, Errc::malformed if it skips versions), signed by a threshold of the trusted
// root's root keys AND a threshold of its own root keys (Errc::bad_signature). Each key counts
// once, however many signatures carry its id. Intermediate expiry is not checked (TUF 5.3.6).
[[nodiscard]] Result<RootDocument> verify_next_root(std::string_view envelope_json,
                                                    const RootDocument& trusted);

// One whole root update cycle over the envelopes of versions N+1, N+2, ... in order (what the
// server returned before its first 404): at most kMaxRootUpdatesPerCycle are looked at. Then the
// newest trusted root must not have expired at `now`, the time read once for the cycle (freeze).
// On failure `*walked` (if given) holds the last root that did verify, to be persisted: each
// verified version stays trusted even when a later one is refused.
[[nodiscard]] Result<RootDocument> update_root(const RootDocument& trusted,
                                               std::span<const std::string> newer_envelopes,
                                               std::int64_t now, RootDocument* walked = nullptr);

// The higher of the pinned root and the one stored by an earlier run: reinstalling the old pinned
// root file never rolls an endpoint back to an older root version.
const RootDocument& newest_root(const RootDocument& pinned, const RootDocument& stored);

// true when `after` names other feed keys (or another threshold) than `before`.
bool feed_keys_rotated(const RootDocument& before, const RootDocument& after);

// What the endpoint remembers of the last feed it accepted (persisted across restarts).
struct FeedMemory {
    std::uint64_t sequence = 0;
    std::string payload_sha256;  // hex SHA-256 of the accepted feed payload
};

// After the feed keys rotated, what was remembered of feeds signed by the old keys is dropped:
// the old key may have signed a feed with a huge sequence (fast-forward attack) that the new key
// could never exceed. Otherwise returns `memory` unchanged.
FeedMemory feed_memory_after_root_update(const RootDocument& before, const RootDocument& after,
                                         const FeedMemory& memory);

// Verifies a feed envelope: signed by a threshold of the feed role's keys, fresh, sequence not
// lower than the last one, and an equal sequence only with identical bytes (a re-signed feed always
// gets a new sequence).
[[nodiscard]] Result<Feed> verify_feed(std::string_view envelope_json, const KeySet& feed_keys,
                                       std::int64_t now, const FeedMemory& last,
                                       FeedMemory* accepted);

// Verifies a manifest envelope against the feed entry that announced it and the release role:
// exact envelope hash, a threshold of release-key signatures (feed keys never count), id and
// sequence as announced, not expired, and not lower than a manifest already accepted for this id
// (`previous_sequence`).
[[nodiscard]] Result<Manifest> verify_manifest(std::string_view envelope_json,
                                               const FeedEntry& announced, const TrustRoot& root,
                                               std::int64_t now,
                                               std::optional<std::uint64_t> previous_sequence);

// What a torrent says about itself (filled from io::swarm::inspect_torrent).
struct TorrentFacts {
    std::string infohash_v2;
    std::string name;
    std::vector<std::pair<std::string, std::uint64_t>> files;  // path, size (sorted)
};

// The torrent must be exactly the one the manifest signed: info-hash, name, and the same files
// with the same sizes (no extra file, none missing).
[[nodiscard]] Result<void> check_torrent_matches(const Manifest& m, const TorrentFacts& t);

}  // namespace patchswarm::core
