#include "core/trust.hpp"

#include <algorithm>

#include "core/envelope.hpp"

namespace patchswarm::core {
namespace {

// Parses and verifies an envelope of the expected type; returns its payload.
Result<crypto::Bytes> open_envelope(std::string_view json, std::size_t max_bytes,
                                    std::string_view type, std::span<const crypto::PublicKey> keys,
                                    std::size_t threshold) {
    auto env = core::parse_envelope(json, max_bytes);
    if (!env) return std::unexpected(env.error());
    return core::verify_envelope(*env, type, keys, threshold);
}

std::string_view as_text(const crypto::Bytes& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

TrustRoot trust_of(const RootDocument& root) {
    return TrustRoot{key_set(root, root.release), key_set(root, root.feed)};
}

namespace {

// Parses the envelope (bounded) and its root document, without checking any signature yet.
Result<std::pair<core::Envelope, RootDocument>> open_root(std::string_view envelope_json) {
    auto env = core::parse_envelope(envelope_json, kMaxRootEnvelopeBytes);
    if (!env) return std::unexpected(env.error());
    if (env->payload_type != core::payload_type::root) {
        return fail(Errc::malformed, "envelope carries \"" + env->payload_type + "\", not a root");
    }
    auto doc = parse_root(as_text(env->payload));
    if (!doc) return std::unexpected(doc.error());
    return std::pair{std::move(*env), std::move(*doc)};
}

Result<void> signed_by_role(const core::Envelope& env, const RootDocument& by,
                            std::string_view whose) {
    const KeySet keys = key_set(by, by.root);
    auto ok = core::verify_envelope(env, core::payload_type::root, keys.keys, keys.threshold);
    if (!ok) {
        return fail(ok.error().code, std::string(whose) + " (version " +
                                         std::to_string(by.version) + "): " + ok.error().message);
    }
    return {};
}

}  // namespace

Result<RootDocument> verify_pinned_root(std::string_view envelope_json) {
    auto opened = open_root(envelope_json);
    if (!opened) return std::unexpected(opened.error());
    auto& [env, doc] = *opened;
    if (auto ok = signed_by_role(env, doc, "root not signed by its own root keys"); !ok) {
        return std::unexpected(ok.error());
    }
    return std::move(doc);
}

Result<RootDocument> verify_next_root(std::string_view envelope_json, const RootDocument& trusted) {
    auto opened = open_root(envelope_json);
    if (!opened) return std::unexpected(opened.error());
    auto& [env, doc] = *opened;
    // Signatures first, as TUF 5.3.4 does: an unsigned document's version means nothing.
    if (auto ok = signed_by_role(env, trusted, "new root not signed by the trusted root keys");
        !ok) {
        return std::unexpected(ok.error());
    }
    if (auto ok = signed_by_role(env, doc, "new root not signed by its own root keys"); !ok) {
        return std::unexpected(ok.error());
    }
    if (doc.version <= trusted.version) {
        return fail(Errc::rollback, "root version " + std::to_string(doc.version) +
                                        " offered after trusted version " +
                                        std::to_string(trusted.version));
    }
    if (doc.version != trusted.version + 1) {
        // Each version must be seen: skipping one would skip the keys it revoked.
        return fail(Errc::malformed, "root version " + std::to_string(doc.version) +
                                         " skips version " + std::to_string(trusted.version + 1));
    }
    return std::move(doc);
}

Result<RootDocument> update_root(const RootDocument& trusted,
                                 std::span<const std::string> newer_envelopes, std::int64_t now,
                                 RootDocument* walked) {
    RootDocument current = trusted;
    const std::size_t n = std::min(newer_envelopes.size(), kMaxRootUpdatesPerCycle);
    for (std::size_t i = 0; i < n; ++i) {
        auto next = verify_next_root(newer_envelopes[i], current);
        if (!next) {
            if (walked) *walked = current;
            return std::unexpected(next.error());
        }
        current = std::move(*next);
    }
    if (walked) *walked = current;
    if (auto fresh = check_root_fresh(current, now); !fresh) return std::unexpected(fresh.error());
    return current;
}

const RootDocument& newest_root(const RootDocument& pinned, const RootDocument& stored) {
    return stored.version > pinned.version ? stored : pinned;
}

bool feed_keys_rotated(const RootDocument& before, const RootDocument& after) {
    if (before.feed != after.feed) return true;
    // Same ids imply the same keys (an id is the key's hash), but compare anyway: cheap.
    for (const auto& id : after.feed.keyids) {
        const auto a = before.keys.find(id);
        const auto b = after.keys.find(id);
        if (a == before.keys.end() || b == after.keys.end() || a->second != b->second) return true;
    }
    return false;
}

FeedMemory feed_memory_after_root_update(const RootDocument& before, const RootDocument& after,
                                         const FeedMemory& memory) {
    return feed_keys_rotated(before, after) ? FeedMemory{} : memory;
}

Result<Feed> verify_feed(std::string_view envelope_json, const KeySet& feed_keys, std::int64_t now,
                         const FeedMemory& last, FeedMemory* accepted) {
    // The base64 payload is 4/3 of the feed, plus the signatures.
    auto payload = open_envelope(envelope_json, kMaxFeedBytes * 4 / 3 + 4096,
                                 core::payload_type::feed, feed_keys.keys, feed_keys.threshold);
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
    auto payload =
        open_envelope(envelope_json, kMaxManifestBytes + (kMaxManifestBytes / 2),
                      core::payload_type::manifest, root.release.keys, root.release.threshold);
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
