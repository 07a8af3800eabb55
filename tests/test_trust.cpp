// The endpoint's chain of checks (delegation → feed → manifest → torrent), attack by attack.
#include <catch2/catch.hpp>

#include "common/trust.hpp"

using namespace patchswarm;
using namespace patchswarm::core;

namespace {

constexpr std::int64_t kNow = 1'800'000'000;

struct Keys {
    crypto::KeyPair release = crypto::generate_keypair();
    crypto::KeyPair feed = crypto::generate_keypair();
    crypto::KeyPair stranger = crypto::generate_keypair();
    TrustRoot root() const { return TrustRoot{{release.public_key}, 1}; }
};

std::string seal(std::string_view type, const std::string& payload, const crypto::KeyPair& key) {
    const crypto::KeyPair keys[] = {key};
    return crypto::serialize_envelope(crypto::sign_envelope(type, crypto::as_bytes(payload), keys));
}

Manifest sample_manifest() {
    Manifest m;
    m.repository = "repo";
    m.id = "MS08-067";
    m.sequence = 5;
    m.created = kNow - 100;
    m.expires = kNow + 86400;
    m.severity = Severity::emergency;
    m.name = "KB958644";
    m.files = {{"install.sh", 20, std::string(64, 'a')}, {"patch.bin", 1000, std::string(64, 'b')}};
    m.infohash_v2 = std::string(64, 'c');
    m.install.argv = {"./install.sh"};
    m.reboot = RebootPolicy::required;
    return m;
}

Feed sample_feed(const std::string& manifest_envelope, std::uint64_t sequence = 10) {
    Feed f;
    f.repository = "repo";
    f.sequence = sequence;
    f.issued = kNow - 10;
    f.expires = kNow + 3600;
    f.releases = {
        {"MS08-067", 5, crypto::sha256_hex(crypto::as_bytes(manifest_envelope)), std::nullopt}};
    return f;
}

std::string delegation_for(const crypto::KeyPair& feed, std::int64_t expires) {
    Delegation d;
    d.public_key = crypto::to_hex(feed.public_key);
    d.expires = expires;
    return serialize_delegation(d);
}

}  // namespace

TEST_CASE("the delegation names the feed key only when the release key signed it", "[core]") {
    Keys k;
    const auto good =
        seal(crypto::payload_type::delegation, delegation_for(k.feed, kNow + 100), k.release);
    auto key = verify_delegation(good, k.root(), kNow);
    REQUIRE(key.has_value());
    CHECK(*key == k.feed.public_key);

    struct Row {
        const char* attack;
        std::string envelope;
        Errc expected;
    };
    const Row rows[] = {
        {"signed by a stranger",
         seal(crypto::payload_type::delegation, delegation_for(k.feed, kNow + 100), k.stranger),
         Errc::bad_signature},
        {"signed by the feed key itself",
         seal(crypto::payload_type::delegation, delegation_for(k.feed, kNow + 100), k.feed),
         Errc::bad_signature},
        {"expired",
         seal(crypto::payload_type::delegation, delegation_for(k.feed, kNow - 1), k.release),
         Errc::expired},
        {"a manifest-typed envelope",
         seal(crypto::payload_type::manifest, delegation_for(k.feed, kNow + 100), k.release),
         Errc::malformed},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = verify_delegation(row.envelope, k.root(), kNow);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
    }
}

TEST_CASE("a feed is accepted only fresh, signed by the feed key and never older", "[core]") {
    Keys k;
    const auto manifest_env =
        seal(crypto::payload_type::manifest, serialize_manifest(sample_manifest()), k.release);
    const auto feed_env =
        seal(crypto::payload_type::feed, serialize_feed(sample_feed(manifest_env)), k.feed);

    FeedMemory accepted;
    auto ok = verify_feed(feed_env, k.feed.public_key, kNow, {}, &accepted);
    REQUIRE(ok.has_value());
    CHECK(accepted.sequence == 10);
    // The very same feed again is fine (a long-poll that timed out returns it).
    CHECK(verify_feed(feed_env, k.feed.public_key, kNow, accepted, nullptr).has_value());

    Feed expired = sample_feed(manifest_env);
    expired.expires = kNow - 1;
    Feed other = sample_feed(manifest_env);
    other.releases.clear();
    std::string flipped = feed_env;
    flipped[flipped.find("\"payload\":\"") + 20] ^= 0x01;

    struct Row {
        const char* attack;
        std::string envelope;
        FeedMemory last;
        Errc expected;
    };
    const Row rows[] = {
        {"signed by a stranger",
         seal(crypto::payload_type::feed, serialize_feed(sample_feed(manifest_env)), k.stranger),
         {},
         Errc::bad_signature},
        {"signed by the release key instead of the feed key",
         seal(crypto::payload_type::feed, serialize_feed(sample_feed(manifest_env)), k.release),
         {},
         Errc::bad_signature},
        {"flipped byte in the payload", flipped, {}, Errc::bad_signature},
        {"expired (freeze attack)",
         seal(crypto::payload_type::feed, serialize_feed(expired), k.feed),
         {},
         Errc::expired},
        {"older sequence (rollback)", feed_env, FeedMemory{11, ""}, Errc::rollback},
        {"same sequence, other content",
         seal(crypto::payload_type::feed, serialize_feed(other), k.feed), accepted, Errc::rollback},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = verify_feed(row.envelope, k.feed.public_key, kNow, row.last, nullptr);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
    }
}

TEST_CASE("a manifest must be the one the feed named, signed by the release key", "[core]") {
    Keys k;
    const Manifest m = sample_manifest();
    const auto env = seal(crypto::payload_type::manifest, serialize_manifest(m), k.release);
    const FeedEntry entry{m.id, m.sequence, crypto::sha256_hex(crypto::as_bytes(env)),
                          std::nullopt};
    auto ok = verify_manifest(env, entry, k.root(), kNow, std::nullopt);
    REQUIRE(ok.has_value());
    CHECK(*ok == m);

    auto entry_for = [&](const std::string& e) {
        return FeedEntry{m.id, m.sequence, crypto::sha256_hex(crypto::as_bytes(e)), std::nullopt};
    };
    Manifest expired = m;
    expired.expires = kNow - 1;
    expired.created = kNow - 100;
    Manifest other_id = m;
    other_id.id = "MS99-999";
    Manifest other_seq = m;
    other_seq.sequence = 6;

    const auto by_feed_key = seal(crypto::payload_type::manifest, serialize_manifest(m), k.feed);
    const auto wrong_type = seal(crypto::payload_type::feed, serialize_manifest(m), k.release);
    const auto env_expired =
        seal(crypto::payload_type::manifest, serialize_manifest(expired), k.release);
    const auto env_other_id =
        seal(crypto::payload_type::manifest, serialize_manifest(other_id), k.release);
    const auto env_other_seq =
        seal(crypto::payload_type::manifest, serialize_manifest(other_seq), k.release);

    struct Row {
        const char* attack;
        std::string envelope;
        FeedEntry entry;
        std::optional<std::uint64_t> previous;
        Errc expected;
    };
    const Row rows[] = {
        {"bytes differ from the hash in the feed", env,
         FeedEntry{m.id, m.sequence, std::string(64, '0'), std::nullopt}, std::nullopt,
         Errc::hash_mismatch},
        {"signed by the (stolen) feed key", by_feed_key, entry_for(by_feed_key), std::nullopt,
         Errc::bad_signature},
        {"a feed-typed envelope offered as manifest", wrong_type, entry_for(wrong_type),
         std::nullopt, Errc::malformed},
        {"expired", env_expired, entry_for(env_expired), std::nullopt, Errc::expired},
        {"id differs from the feed entry", env_other_id, entry_for(env_other_id), std::nullopt,
         Errc::malformed},
        {"sequence differs from the feed entry", env_other_seq, entry_for(env_other_seq),
         std::nullopt, Errc::malformed},
        {"lower sequence than accepted before (rollback)", env, entry,
         std::optional<std::uint64_t>{6}, Errc::rollback},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = verify_manifest(row.envelope, row.entry, k.root(), kNow, row.previous);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
    }
}

TEST_CASE("a torrent must carry exactly the files the manifest signed", "[core]") {
    const Manifest m = sample_manifest();
    const TorrentFacts good{m.infohash_v2, m.name, {{"patch.bin", 1000}, {"install.sh", 20}}};
    CHECK(check_torrent_matches(m, good).has_value());

    struct Row {
        const char* attack;
        TorrentFacts facts;
        Errc expected;
    };
    const Row rows[] = {
        {"wrong info-hash", {std::string(64, 'd'), m.name, good.files}, Errc::hash_mismatch},
        {"other name", {m.infohash_v2, "other", good.files}, Errc::malformed},
        {"extra file",
         {m.infohash_v2, m.name, {{"install.sh", 20}, {"patch.bin", 1000}, {"evil.sh", 5}}},
         Errc::malformed},
        {"missing file", {m.infohash_v2, m.name, {{"install.sh", 20}}}, Errc::malformed},
        {"bigger file (endless data)",
         {m.infohash_v2, m.name, {{"install.sh", 20}, {"patch.bin", 1001}}},
         Errc::malformed},
        {"renamed file",
         {m.infohash_v2, m.name, {{"install.sh", 20}, {"patch.exe", 1000}}},
         Errc::malformed},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = check_torrent_matches(m, row.facts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
    }
}
