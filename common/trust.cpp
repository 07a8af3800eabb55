#include "common/trust.hpp"

#include <algorithm>

namespace patchswarm::core {
namespace {

// Parses and verifies an envelope of the expected type; returns its payload.
Result<crypto::Bytes> open_envelope(std::string_view json, std::size_t max_bytes,
                                    std::string_view type, std::span<const crypto::PublicKey> keys,
                                    std::size_t threshold) {
    auto env = crypto::parse_envelope(json, max_bytes);
    if (!env) return std::unexpected(env.error());
    return crypto::verify_envelope(*env, type, keys, threshold);
}

std::string_view as_text(const crypto::Bytes& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

Result<crypto::PublicKey> verify_delegation(std::string_view envelope_json, const TrustRoot& root,
                                            std::int64_t now) {
    auto payload =
        open_envelope(envelope_json, kMaxDelegationBytes, crypto::payload_type::delegation,
                      root.release_keys, root.threshold);
    if (!payload) return std::unexpected(payload.error());
    auto d = parse_delegation(as_text(*payload));
    if (!d) return std::unexpected(d.error());
    if (d->role != "feed") return fail(Errc::malformed, "delegation: role is not 'feed'");
    if (d->expires <= now) return fail(Errc::expired, "delegation of the feed key has expired");
    auto raw = crypto::from_hex(d->public_key);
    if (!raw || raw->size() != 32) return fail(Errc::malformed, "delegation: bad public_key");
    crypto::PublicKey key{};
    std::copy(raw->begin(), raw->end(), key.begin());
    return key;
}

Result<Feed> verify_feed(std::string_view envelope_json, const crypto::PublicKey& feed_key,
                         std::int64_t now, const FeedMemory& last, FeedMemory* accepted) {
    const crypto::PublicKey keys[] = {feed_key};
    auto payload =
        open_envelope(envelope_json, kMaxFeedBytes + 4096, crypto::payload_type::feed, keys, 1);
    if (!payload) return std::unexpected(payload.error());
    auto feed = parse_feed(as_text(*payload));
    if (!feed) return std::unexpected(feed.error());
    if (auto fresh = check_feed_fresh(*feed, now); !fresh) return std::unexpected(fresh.error());
    const std::string digest = crypto::sha256_hex(*payload);
    if (feed->sequence < last.sequence) {
        return fail(Errc::rollback, "feed sequence " + std::to_string(feed->sequence) +
                                        " is lower than " + std::to_string(last.sequence) +
                                        " seen before");
    }
    if (feed->sequence == last.sequence && !last.payload_sha256.empty() &&
        digest != last.payload_sha256) {
        return fail(Errc::rollback, "feed sequence " + std::to_string(feed->sequence) +
                                        " reused with different content");
    }
    if (accepted) *accepted = FeedMemory{feed->sequence, digest};
    return feed;
}

Result<Manifest> verify_manifest(std::string_view envelope_json, const FeedEntry& announced,
                                 const TrustRoot& root, std::int64_t now,
                                 std::optional<std::uint64_t> previous_sequence) {
    if (crypto::sha256_hex(crypto::as_bytes(envelope_json)) != announced.manifest_sha256) {
        return fail(Errc::hash_mismatch, "manifest bytes do not match the hash in the feed");
    }
    auto payload = open_envelope(envelope_json, kMaxManifestBytes + (kMaxManifestBytes / 2),
                                 crypto::payload_type::manifest, root.release_keys, root.threshold);
    if (!payload) return std::unexpected(payload.error());
    auto m = parse_manifest(as_text(*payload));
    if (!m) return std::unexpected(m.error());
    if (m->id != announced.id) {
        return fail(Errc::malformed,
                    "manifest id '" + m->id + "' differs from the feed's '" + announced.id + "'");
    }
    if (m->sequence != announced.sequence) {
        return fail(Errc::malformed, "manifest sequence differs from the feed's");
    }
    if (auto fresh = check_manifest_fresh(*m, now); !fresh) return std::unexpected(fresh.error());
    if (previous_sequence && m->sequence < *previous_sequence) {
        return fail(Errc::rollback, "manifest sequence " + std::to_string(m->sequence) + " for " +
                                        m->id + " is lower than " +
                                        std::to_string(*previous_sequence) + " seen before");
    }
    return m;
}

Result<void> check_torrent_matches(const Manifest& m, const TorrentFacts& t) {
    if (t.infohash_v2 != m.infohash_v2) {
        return fail(Errc::hash_mismatch, "torrent info-hash differs from the signed manifest");
    }
    if (t.name != m.name) return fail(Errc::malformed, "torrent name differs from the manifest");
    if (t.files.size() != m.files.size()) {
        return fail(Errc::malformed, "torrent has " + std::to_string(t.files.size()) +
                                         " files, the manifest " + std::to_string(m.files.size()));
    }
    auto sorted = t.files;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        if (sorted[i].first != m.files[i].path || sorted[i].second != m.files[i].size) {
            return fail(Errc::malformed,
                        "torrent file '" + sorted[i].first + "' does not match the manifest");
        }
    }
    return {};
}

}  // namespace patchswarm::core
