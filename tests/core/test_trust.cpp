// The endpoint's chain of checks (root → feed → manifest → torrent), attack by attack. Each
// table row is named after the attack it carries; docs/SECURITY.md points here.
#include <catch2/catch.hpp>
#include <limits>

#include "core/envelope.hpp"
#include "core/trust.hpp"
#include "support/signing.hpp"

using namespace patchswarm;
using namespace patchswarm::core;

using patchswarm::test::seal;
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

struct Keys {
    crypto::KeyPair release = crypto::generate_keypair();
    crypto::KeyPair feed = crypto::generate_keypair();
    crypto::KeyPair stranger = crypto::generate_keypair();
    TrustRoot root() const { return TrustRoot{{{release.public_key}, 1}, {{feed.public_key}, 1}}; }
};

std::string seal_all(std::string_view type, const std::string& payload,
                     std::vector<crypto::KeyPair> keys) {
    return core::serialize_envelope(core::sign_envelope(type, crypto::as_bytes(payload), keys));
}

std::vector<crypto::PublicKey> publics(const std::vector<crypto::KeyPair>& keys) {
    std::vector<crypto::PublicKey> out;
    for (const auto& k : keys) out.push_back(k.public_key);
    return out;
}

// Three generations of root keys, release keys and feed keys, for rotation tables.
struct RootKeys {
    std::vector<crypto::KeyPair> root_a = {crypto::generate_keypair(), crypto::generate_keypair(),
                                           crypto::generate_keypair()};
    std::vector<crypto::KeyPair> root_b = {crypto::generate_keypair(), crypto::generate_keypair(),
                                           crypto::generate_keypair()};
    std::vector<crypto::KeyPair> release = {crypto::generate_keypair(), crypto::generate_keypair(),
                                            crypto::generate_keypair()};
    crypto::KeyPair feed1 = crypto::generate_keypair();
    crypto::KeyPair feed2 = crypto::generate_keypair();

    // Root `version`: root keys (2 of 3), release keys (2 of 3), one feed key.
    RootDocument doc(std::uint64_t version, const std::vector<crypto::KeyPair>& root_keys,
                     const crypto::KeyPair& feed, std::int64_t expires = kNow + 86400) const {
        RootDocument r;
        r.version = version;
        r.expires = expires;
        r.root = add_role_keys(r, publics(root_keys), 2);
        r.release = add_role_keys(r, publics(release), 2);
        const crypto::PublicKey f[] = {feed.public_key};
        r.feed = add_role_keys(r, f, 1);
        return r;
    }
};

std::string seal_root(const RootDocument& r, std::vector<crypto::KeyPair> signers) {
    return seal_all(core::payload_type::root, serialize_root(r), std::move(signers));
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

}  // namespace

TEST_CASE("a feed is accepted only fresh, signed by the feed key and never older", "[core]") {
    Keys k;
    const auto manifest_env =
        seal(core::payload_type::manifest, serialize_manifest(sample_manifest()), k.release);
    const auto feed_env =
        seal(core::payload_type::feed, serialize_feed(sample_feed(manifest_env)), k.feed);

    FeedMemory accepted;
    auto ok = verify_feed(feed_env, k.root().feed, kNow, {}, &accepted);
    REQUIRE(ok.has_value());
    CHECK(accepted.sequence == 10);
    // The very same feed again is fine (a long-poll that timed out returns it).
    CHECK(verify_feed(feed_env, k.root().feed, kNow, accepted, nullptr).has_value());

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
         seal(core::payload_type::feed, serialize_feed(sample_feed(manifest_env)), k.stranger),
         {},
         Errc::bad_signature},
        {"signed by the release key instead of the feed key",
         seal(core::payload_type::feed, serialize_feed(sample_feed(manifest_env)), k.release),
         {},
         Errc::bad_signature},
        {"flipped byte in the payload", flipped, {}, Errc::bad_signature},
        {"expired (freeze attack)",
         seal(core::payload_type::feed, serialize_feed(expired), k.feed),
         {},
         Errc::expired},
        {"older sequence (rollback)", feed_env, FeedMemory{11, ""}, Errc::rollback},
        {"same sequence, other content",
         seal(core::payload_type::feed, serialize_feed(other), k.feed), accepted, Errc::rollback},
        {"endless data: an envelope over the feed bound",
         std::string(kMaxFeedBytes * 2, ' '),
         {},
         Errc::too_large},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = verify_feed(row.envelope, k.root().feed, kNow, row.last, nullptr);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
    }
}

TEST_CASE("a manifest must be the one the feed named, signed by the release key", "[core]") {
    Keys k;
    const Manifest m = sample_manifest();
    const auto env = seal(core::payload_type::manifest, serialize_manifest(m), k.release);
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

    const auto by_feed_key = seal(core::payload_type::manifest, serialize_manifest(m), k.feed);
    const auto wrong_type = seal(core::payload_type::feed, serialize_manifest(m), k.release);
    const auto env_expired =
        seal(core::payload_type::manifest, serialize_manifest(expired), k.release);
    const auto env_other_id =
        seal(core::payload_type::manifest, serialize_manifest(other_id), k.release);
    const auto env_other_seq =
        seal(core::payload_type::manifest, serialize_manifest(other_seq), k.release);

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

TEST_CASE("a root rotation is accepted only as version N+1 signed by old and new thresholds",
          "[core]") {
    RootKeys k;
    const RootDocument v1 = k.doc(1, k.root_a, k.feed1);
    const std::string v1_env = seal_root(v1, {k.root_a[0], k.root_a[1]});
    auto pinned = verify_pinned_root(v1_env);
    REQUIRE(pinned);
    CHECK(*pinned == v1);

    // v2 hands the root role to new keys: two old and two new signatures are needed.
    const RootDocument v2 = k.doc(2, k.root_b, k.feed2);
    auto good =
        verify_next_root(seal_root(v2, {k.root_a[0], k.root_a[2], k.root_b[0], k.root_b[1]}), v1);
    REQUIRE(good);
    CHECK(*good == v2);

    // One key whose signature appears twice: both entries verify, the key still counts once.
    core::Envelope doubled =
        core::sign_envelope(core::payload_type::root, crypto::as_bytes(serialize_root(v2)),
                            std::vector<crypto::KeyPair>{k.root_a[0], k.root_b[0], k.root_b[1]});
    doubled.signatures.push_back(doubled.signatures.front());
    REQUIRE(doubled.signatures[0].keyid == doubled.signatures[3].keyid);

    std::string v2_unknown = serialize_root(v2);
    v2_unknown.insert(v2_unknown.size() - 1, ",\"consistent\":true");

    struct Row {
        const char* attack;
        std::string envelope;
        RootDocument trusted;
        Errc expected;
    };
    const Row rows[] = {
        {"wrong version: skips from 1 to 3",
         seal_root(k.doc(3, k.root_b, k.feed2),
                   {k.root_a[0], k.root_a[1], k.root_b[0], k.root_b[1]}),
         v1, Errc::malformed},
        {"rollback of root version: v1 offered after v2",
         seal_root(v1, {k.root_a[0], k.root_a[1], k.root_b[0], k.root_b[1]}), v2, Errc::rollback},
        {"rollback: the trusted version offered again as N+1", v1_env, v1, Errc::rollback},
        {"not signed by the old threshold (one old key)",
         seal_root(v2, {k.root_a[0], k.root_b[0], k.root_b[1], k.root_b[2]}), v1,
         Errc::bad_signature},
        {"not signed by the old root keys at all (attacker's own keys)",
         seal_root(v2, {k.root_b[0], k.root_b[1], k.root_b[2]}), v1, Errc::bad_signature},
        {"not signed by the new threshold (one new key)",
         seal_root(v2, {k.root_a[0], k.root_a[1], k.root_b[0]}), v1, Errc::bad_signature},
        {"duplicate signatures by one key counted as two", core::serialize_envelope(doubled), v1,
         Errc::bad_signature},
        {"signed by the release keys instead of root keys",
         seal_root(v2, {k.release[0], k.release[1], k.root_b[0], k.root_b[1]}), v1,
         Errc::bad_signature},
        {"signed by the online feed key", seal_root(v2, {k.feed1, k.root_b[0], k.root_b[1]}), v1,
         Errc::bad_signature},
        {"a manifest-typed envelope offered as root",
         seal_all(core::payload_type::manifest, serialize_root(v2),
                  {k.root_a[0], k.root_a[1], k.root_b[0], k.root_b[1]}),
         v1, Errc::malformed},
        {"unknown field in the root document",
         seal_all(core::payload_type::root, v2_unknown,
                  {k.root_a[0], k.root_a[1], k.root_b[0], k.root_b[1]}),
         v1, Errc::malformed},
        {"endless data: root envelope over 64 KiB", std::string(kMaxRootEnvelopeBytes + 1, ' '), v1,
         Errc::too_large},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = verify_next_root(row.envelope, row.trusted);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
    }
}

TEST_CASE("an update cycle walks root versions in order and refuses an expired newest root",
          "[core]") {
    RootKeys k;
    const RootDocument v1 = k.doc(1, k.root_a, k.feed1, kNow - 10);  // a pinned root may be old
    const RootDocument v2 = k.doc(2, k.root_a, k.feed1, kNow - 5);   // intermediate: may expire
    const RootDocument v3 = k.doc(3, k.root_b, k.feed2);
    const std::vector<std::string> chain = {
        seal_root(v2, {k.root_a[0], k.root_a[1]}),
        seal_root(v3, {k.root_a[0], k.root_a[1], k.root_b[1], k.root_b[2]})};
    auto walked = update_root(v1, chain, kNow);
    REQUIRE(walked);
    CHECK(*walked == v3);

    struct Row {
        const char* attack;
        std::vector<std::string> chain;
        Errc expected;
        std::uint64_t walked_to;  // what stays trusted (and is persisted) after the failure
    };
    const Row rows[] = {
        {"freeze: no newer root and the trusted one expired", {}, Errc::expired, 1},
        {"freeze: the newest root served has expired", {chain[0]}, Errc::expired, 2},
        {"wrong version skip in the middle of the chain", {chain[1]}, Errc::malformed, 1},
        {"a forged v3 after a good v2",
         {chain[0], seal_root(v3, {k.root_b[0], k.root_b[1], k.root_b[2]})},
         Errc::bad_signature,
         2},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        RootDocument after;
        auto r = update_root(v1, row.chain, kNow, &after);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
        CHECK(after.version == row.walked_to);
    }

    // Endless data: at most kMaxRootUpdatesPerCycle versions are followed in one cycle.
    std::vector<std::string> long_chain;
    RootDocument prev = v1;
    for (std::uint64_t v = 2; v <= kMaxRootUpdatesPerCycle + 5; ++v) {
        const RootDocument next = k.doc(v, k.root_a, k.feed1);
        long_chain.push_back(seal_root(next, {k.root_a[0], k.root_a[1]}));
        prev = next;
    }
    RootDocument after;
    auto capped = update_root(v1, long_chain, kNow, &after);
    REQUIRE(capped);
    CHECK(capped->version == 1 + kMaxRootUpdatesPerCycle);
    CHECK(prev.version > capped->version);
}

TEST_CASE("a pinned root must carry a threshold of its own root keys", "[core]") {
    RootKeys k;
    const RootDocument v1 = k.doc(1, k.root_a, k.feed1);
    CHECK(verify_pinned_root(seal_root(v1, {k.root_a[1], k.root_a[2]})));
    struct Row {
        const char* attack;
        std::string envelope;
        Errc expected;
    };
    const Row rows[] = {
        {"one root signature of two required", seal_root(v1, {k.root_a[0]}), Errc::bad_signature},
        {"signed by strangers", seal_root(v1, {k.root_b[0], k.root_b[1]}), Errc::bad_signature},
        {"unsigned", seal_root(v1, {}), Errc::bad_signature},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = verify_pinned_root(row.envelope);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.expected);
    }
}

TEST_CASE("rollback of the root version across restarts: the newer stored root wins", "[core]") {
    RootKeys k;
    const RootDocument v1 = k.doc(1, k.root_a, k.feed1);
    const RootDocument v2 = k.doc(2, k.root_a, k.feed2);
    CHECK(newest_root(v1, v2).version == 2);  // pinned v1 reinstalled, v2 stored
    CHECK(newest_root(v2, v1).version == 2);  // a newer pinned root takes over
}

TEST_CASE("after a feed key rotation the old feed state is dropped (fast-forward recovery)",
          "[core]") {
    RootKeys k;
    const RootDocument v1 = k.doc(1, k.root_a, k.feed1);
    const RootDocument same_feed = k.doc(2, k.root_b, k.feed1);
    const RootDocument new_feed = k.doc(2, k.root_a, k.feed2);
    // The stolen old feed key signed a feed with a huge sequence, which the endpoint accepted.
    const FeedMemory fast_forwarded{std::numeric_limits<std::uint64_t>::max() / 2, "ab"};

    CHECK_FALSE(feed_keys_rotated(v1, same_feed));
    CHECK(feed_memory_after_root_update(v1, same_feed, fast_forwarded).sequence ==
          fast_forwarded.sequence);
    REQUIRE(feed_keys_rotated(v1, new_feed));
    const FeedMemory dropped = feed_memory_after_root_update(v1, new_feed, fast_forwarded);
    CHECK(dropped.sequence == 0);
    CHECK(dropped.payload_sha256.empty());

    Feed f;
    f.repository = "repo";
    f.sequence = 1'800'000'000;
    f.issued = kNow - 10;
    f.expires = kNow + 3600;
    const auto by_new = seal(core::payload_type::feed, serialize_feed(f), k.feed2);
    const auto by_old = seal(core::payload_type::feed, serialize_feed(f), k.feed1);
    const TrustRoot trust = trust_of(new_feed);
    // With the old memory the new key's feed would look like a rollback forever.
    CHECK(verify_feed(by_new, trust.feed, kNow, fast_forwarded, nullptr).error().code ==
          Errc::rollback);
    CHECK(verify_feed(by_new, trust.feed, kNow, dropped, nullptr).has_value());
    // And the retired key signs nothing the endpoint accepts any more.
    CHECK(verify_feed(by_old, trust.feed, kNow, dropped, nullptr).error().code ==
          Errc::bad_signature);
}

TEST_CASE("a manifest needs a threshold of distinct release keys, and feed keys never count",
          "[core]") {
    RootKeys k;
    const RootDocument root = k.doc(1, k.root_a, k.feed1);
    const TrustRoot trust = trust_of(root);
    REQUIRE(trust.release.threshold == 2);
    const Manifest m = sample_manifest();
    const std::string bytes = serialize_manifest(m);
    auto entry_for = [&](const std::string& e) {
        return FeedEntry{m.id, m.sequence, crypto::sha256_hex(crypto::as_bytes(e)), std::nullopt};
    };
    const auto two = seal_all(core::payload_type::manifest, bytes, {k.release[0], k.release[2]});
    CHECK(verify_manifest(two, entry_for(two), trust, kNow, std::nullopt));

    core::Envelope doubled =
        core::sign_envelope(core::payload_type::manifest, crypto::as_bytes(bytes),
                            std::vector<crypto::KeyPair>{k.release[1]});
    doubled.signatures.push_back(doubled.signatures.front());
    const std::string doubled_json = core::serialize_envelope(doubled);

    struct Row {
        const char* attack;
        std::string envelope;
    };
    const Row rows[] = {
        {"threshold 2 of 3 release keys, only 1 signature",
         seal_all(core::payload_type::manifest, bytes, {k.release[0]})},
        {"one release key's signature twice", doubled_json},
        {"one release key plus the (stolen) feed key",
         seal_all(core::payload_type::manifest, bytes, {k.release[0], k.feed1})},
        {"manifest signed by the feed key",
         seal_all(core::payload_type::manifest, bytes, {k.feed1})},
        {"signed by root keys, not release keys",
         seal_all(core::payload_type::manifest, bytes, {k.root_a[0], k.root_a[1]})},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = verify_manifest(row.envelope, entry_for(row.envelope), trust, kNow, std::nullopt);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::bad_signature);
    }
}

TEST_CASE("a root document that would let the online key sign releases is invalid", "[core]") {
    RootKeys k;
    const RootDocument good = k.doc(1, k.root_a, k.feed1);
    REQUIRE(validate_root(good));
    CHECK(parse_root(serialize_root(good)) == good);

    auto with = [&](auto mutate) {
        RootDocument r = good;
        mutate(r);
        return r;
    };
    const crypto::PublicKey release0[] = {k.release[0].public_key};
    struct Row {
        const char* attack;
        RootDocument doc;
    };
    const Row rows[] = {
        {"feed role shares a key with the release role",
         with([&](RootDocument& r) { r.feed = add_role_keys(r, release0, 1); })},
        {"threshold above the number of keys",
         with([](RootDocument& r) { r.release.threshold = 4; })},
        {"threshold 0 (accept unsigned)", with([](RootDocument& r) { r.root.threshold = 0; })},
        {"role names an unknown key id",
         with([](RootDocument& r) { r.release.keyids.push_back(std::string(64, 'f')); })},
        {"key id is not the key's hash",
         with([](RootDocument& r) { r.keys[r.feed.keyids[0]] = r.keys[r.root.keyids[0]]; })},
        {"one key listed twice to look like two",
         with([](RootDocument& r) { r.root.keyids[1] = r.root.keyids[0]; })},
        {"version 0", with([](RootDocument& r) { r.version = 0; })},
    };
    for (const auto& row : rows) {
        INFO(row.attack);
        auto r = validate_root(row.doc);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
}
