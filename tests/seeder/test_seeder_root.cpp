// The seeder's root document commands (root init / rotate / sign, offline `sign`) and publishing
// with several release keys (--key repeated, --stage, --commit with merged signatures), on
// temporary repositories. What is committed is checked with the endpoint's own verifiers.
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <string>

#include "core/envelope.hpp"
#include "core/trust.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/key_files.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kNow = 1'763'800'000;
const bool kQuiet = (spdlog::set_level(spdlog::level::warn), true);

std::string slurp(const fs::path& p) {
    auto text = io::read_file(p, 1 << 24);
    REQUIRE(text);
    return *text;
}

std::map<std::string, std::string> tree(const fs::path& root) {
    std::map<std::string, std::string> out;
    if (!fs::exists(root)) return out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        const std::string rel = fs::relative(e.path(), root).string();
        if (rel == ".lock") continue;
        out[rel] = e.is_directory() ? std::string("<dir>") : slurp(e.path());
    }
    return out;
}

// Key files keys/<name>.key / .pub: root keys a1..a3 and b1..b3, release keys p1..p3.
struct Setup {
    test::TempDir dir{"ps-root"};
    fs::path repo = dir / "repo";

    Setup() {
        for (const char* name : {"a1", "a2", "a3", "b1", "b2", "b3", "p1", "p2", "p3", "x"}) {
            REQUIRE(keygen(dir / "keys" / name));
        }
    }
    fs::path pub(const std::string& name) const { return dir / "keys" / (name + ".pub"); }
    fs::path key(const std::string& name) const { return dir / "keys" / (name + ".key"); }

    RootInitRequest init(std::vector<std::string> signers) const {
        RootInitRequest r;
        r.repo = repo;
        r.root_public_keys = {pub("a1"), pub("a2"), pub("a3")};
        r.root_threshold = 2;
        r.release_public_keys = {pub("p1"), pub("p2"), pub("p3")};
        r.release_threshold = 2;
        for (const auto& s : signers) r.sign_keys.push_back(key(s));
        return r;
    }

    void committed_root() {
        auto st = root_init(init({"a1", "a3"}), kNow - 100);
        REQUIRE(st);
        REQUIRE(st->committed);
    }

    fs::path payload(const std::string& name) {
        const fs::path p = dir / "payloads" / name;
        fs::create_directories(p);
        std::ofstream(p / "install.sh") << "#!/bin/sh\necho " << name << "\n";
        std::ofstream(p / "data.bin") << std::string(5000, 'z') << name;
        return p;
    }

    PublishRequest request(const std::string& id, std::vector<std::string> signers) {
        PublishRequest r;
        r.repo = repo;
        r.id = id;
        r.payload = payload(id);
        r.install = "./install.sh";
        for (const auto& s : signers) r.release_keys.push_back(key(s));
        return r;
    }

    core::RootDocument root_doc() const {
        auto current = load_current_root(RepoPaths(repo));
        REQUIRE(current);
        return current->doc;
    }
};

}  // namespace

TEST_CASE("root init with 2 of 3 root keys stays staged until a second root key signs", "[core]") {
    Setup s;
    auto staged = root_init(s.init({"a1"}), kNow);
    REQUIRE(staged);
    CHECK_FALSE(staged->committed);
    CHECK(staged->signed_by_own == 1);
    CHECK(staged->own_threshold == 2);
    CHECK(fs::exists(s.repo / "root/staged.json"));
    CHECK_FALSE(fs::exists(s.repo / "root/1.json"));
    // Nothing can be published before the root is committed.
    auto early = publish(s.request("KB1", {"p1", "p2"}), kNow);
    REQUIRE_FALSE(early);
    CHECK(early.error().code == Errc::not_found);

    auto again = root_sign({s.repo, {s.key("a1")}, {}});  // the same key twice counts once
    REQUIRE(again);
    CHECK_FALSE(again->committed);
    auto done = root_sign({s.repo, {s.key("a2")}, {}});
    REQUIRE(done);
    CHECK(done->committed);
    CHECK_FALSE(fs::exists(s.repo / "root/staged.json"));
    auto pinned = core::verify_pinned_root(slurp(s.repo / "root/1.json"));
    REQUIRE(pinned);
    CHECK(pinned->version == 1);
    CHECK(pinned->root.threshold == 2);
    CHECK(pinned->release.threshold == 2);
    CHECK(pinned->release.keyids.size() == 3);
    CHECK(pinned->expires == kNow + 365 * 86'400);

    auto twice = root_init(s.init({"a1", "a2"}), kNow);
    REQUIRE_FALSE(twice);
    CHECK(twice.error().code == Errc::already_exists);
}

TEST_CASE("root commands refuse keys that are not root keys and bad thresholds", "[core]") {
    Setup s;
    auto stranger = root_init(s.init({"x"}), kNow);
    REQUIRE_FALSE(stranger);
    CHECK(stranger.error().code == Errc::bad_signature);
    CHECK_FALSE(fs::exists(s.repo / "root/1.json"));

    auto too_high = s.init({"a1"});
    too_high.release_threshold = 4;
    auto r = root_init(too_high, kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);

    auto feed_is_release = s.init({"a1"});
    feed_is_release.feed_public_key = s.pub("p1");
    r = root_init(feed_is_release, kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);

    CHECK_FALSE(root_sign({s.repo, {s.key("a1")}, {}}));  // nothing staged
}

TEST_CASE("a rotation to new root keys needs the old and the new thresholds, offline or not",
          "[core]") {
    Setup s;
    s.committed_root();
    const core::RootDocument v1 = s.root_doc();

    RootRotateRequest rot;
    rot.repo = s.repo;
    rot.root_public_keys = {s.pub("b1"), s.pub("b2"), s.pub("b3")};
    rot.root_threshold = 2;
    rot.sign_keys = {s.key("a1"), s.key("b1"), s.key("b2")};
    auto staged = root_rotate(rot, kNow);
    REQUIRE(staged);
    CHECK(staged->version == 2);
    CHECK_FALSE(staged->committed);  // one old signature of two
    CHECK(staged->signed_by_previous == 1);
    CHECK(staged->signed_by_own == 2);

    // The second old key holder signs a copy offline; junk in the copy is not merged.
    const fs::path copy = s.dir / "copy.json";
    fs::copy_file(s.repo / "root/staged.json", copy);
    auto what = sign_envelope_file(copy, s.key("a3"));
    REQUIRE(what);
    CHECK(what->find("root version 2") != std::string::npos);
    auto signed_copy = core::parse_envelope(slurp(copy), 1 << 20);
    REQUIRE(signed_copy);
    core::Envelope with_junk = *signed_copy;
    with_junk.signatures.push_back({std::string(64, 'e'), crypto::Signature{}});
    std::ofstream(copy, std::ios::trunc) << core::serialize_envelope(with_junk);

    auto done = root_sign({s.repo, {}, {copy}});
    REQUIRE(done);
    CHECK(done->committed);
    const std::string v2_bytes = slurp(s.repo / "root/2.json");
    auto v2 = core::verify_next_root(v2_bytes, v1);
    REQUIRE(v2);
    CHECK(v2->root.keyids.size() == 3);
    CHECK(v2->feed == v1.feed);  // unchanged roles are carried over
    auto env = core::parse_envelope(v2_bytes, 1 << 20);
    REQUIRE(env);
    CHECK(env->signatures.size() == 4);  // the junk entry was dropped

    // A copy of another document is refused.
    fs::copy_file(s.repo / "root/1.json", s.dir / "v1.json");
    rot.root_public_keys.clear();
    rot.sign_keys = {};
    REQUIRE(root_rotate(rot, kNow));
    auto other = root_sign({s.repo, {}, {s.dir / "v1.json"}});
    REQUIRE_FALSE(other);
    CHECK(other.error().code == Errc::malformed);
}

TEST_CASE("a rotation with a new feed key installs that key when the root is committed", "[core]") {
    Setup s;
    s.committed_root();
    const RepoPaths paths(s.repo);
    auto old_feed = io::load_public_key(paths.feed_public_key());
    REQUIRE(old_feed);

    RootRotateRequest rot;
    rot.repo = s.repo;
    rot.new_feed_key = true;
    rot.sign_keys = {s.key("a2")};
    auto staged = root_rotate(rot, kNow);
    REQUIRE(staged);
    REQUIRE_FALSE(staged->committed);
    // Until the root naming it is committed, `serve` keeps signing with the old key.
    CHECK(*io::load_public_key(paths.feed_public_key()) == *old_feed);

    auto done = root_sign({s.repo, {s.key("a3")}, {}});
    REQUIRE(done);
    REQUIRE(done->committed);
    auto new_feed = io::load_public_key(paths.feed_public_key());
    REQUIRE(new_feed);
    CHECK(*new_feed != *old_feed);
    const auto v2 = s.root_doc();
    CHECK(v2.feed.keyids == std::vector<std::string>{crypto::key_id(*new_feed)});
    CHECK_FALSE(v2.keys.contains(crypto::key_id(*old_feed)));  // retired keys leave the root
    CHECK(fs::exists(paths.keys_dir() / "feed-retired-v1.key"));
    CHECK_FALSE(fs::exists(paths.feed_next_secret_key()));
    CHECK((fs::status(paths.feed_secret_key()).permissions() & fs::perms::group_all) ==
          fs::perms::none);
}

TEST_CASE("publish needs a threshold of the root's release keys, and one of two changes nothing",
          "[core]") {
    Setup s;
    s.committed_root();
    const auto before = tree(s.repo);
    auto one = publish(s.request("KB1", {"p1"}), kNow);
    REQUIRE_FALSE(one);
    CHECK(one.error().code == Errc::bad_signature);
    CHECK(tree(s.repo) == before);

    auto stranger = publish(s.request("KB1", {"p1", "x"}), kNow);
    REQUIRE_FALSE(stranger);
    CHECK(stranger.error().code == Errc::bad_signature);
    CHECK(tree(s.repo) == before);

    auto two = publish(s.request("KB1", {"p1", "p3"}), kNow);
    REQUIRE(two);
    CHECK(two->signatures == 2);
    CHECK(two->threshold == 2);
    const std::string envelope = slurp(s.repo / "releases/KB1/manifest.json");
    const core::FeedEntry entry{"KB1", two->sequence, two->manifest_sha256, std::nullopt};
    CHECK(core::verify_manifest(envelope, entry, core::trust_of(s.root_doc()), kNow, std::nullopt));
}

TEST_CASE("a staged release gathers signatures offline and is published at the threshold",
          "[core]") {
    Setup s;
    s.committed_root();
    auto req = s.request("KB1", {"p2"});
    req.stage = true;
    auto staged = publish(req, kNow);
    REQUIRE(staged);
    CHECK(staged->staged);
    CHECK(staged->signatures == 1);
    CHECK(fs::exists(s.repo / "staged/KB1/manifest.json"));
    CHECK(load_index(RepoPaths(s.repo))->releases.empty());
    // The sequence is reserved: a release published meanwhile takes the next one.
    auto other = publish(s.request("KB2", {"p1", "p2"}), kNow);
    REQUIRE(other);
    CHECK(other->sequence == staged->sequence + 1);

    // Short of the threshold: refused, nothing published, the signature kept.
    auto short_commit = publish_commit({s.repo, "KB1", {}, {}, false}, kNow);
    REQUIRE_FALSE(short_commit);
    CHECK(short_commit.error().code == Errc::bad_signature);

    const fs::path copy = s.dir / "KB1-manifest.json";
    fs::copy_file(s.repo / "staged/KB1/manifest.json", copy);
    auto what = sign_envelope_file(copy, s.key("p3"));
    REQUIRE(what);
    CHECK(what->find("KB1") != std::string::npos);
    auto done = publish_commit({s.repo, "KB1", {}, {copy}, false}, kNow + 60);
    REQUIRE(done);
    CHECK(done->signatures == 2);
    CHECK_FALSE(fs::exists(s.repo / "staged"));
    const auto index = load_index(RepoPaths(s.repo));
    REQUIRE(index);
    REQUIRE(index->releases.size() == 2);
    const std::string envelope = slurp(s.repo / "releases/KB1/manifest.json");
    CHECK(crypto::sha256_hex(crypto::as_bytes(envelope)) == done->manifest_sha256);
    const core::FeedEntry entry{"KB1", done->sequence, done->manifest_sha256, std::nullopt};
    CHECK(core::verify_manifest(envelope, entry, core::trust_of(s.root_doc()), kNow + 60,
                                std::nullopt));
    CHECK(fs::exists(s.repo / "releases/KB1/payload/KB1/data.bin"));

    auto nothing = publish_commit({s.repo, "KB9", {s.key("p1")}, {}, false}, kNow);
    REQUIRE_FALSE(nothing);
    CHECK(nothing.error().code == Errc::not_found);
}

TEST_CASE("merge_signatures copies only valid signatures of allowed keys", "[core]") {
    const auto a = crypto::generate_keypair();
    const auto b = crypto::generate_keypair();
    const auto stranger = crypto::generate_keypair();
    const std::string payload = "{\"x\":1}";
    auto base = core::sign_envelope(core::payload_type::manifest, crypto::as_bytes(payload),
                                    std::vector<crypto::KeyPair>{a});
    auto from = core::sign_envelope(core::payload_type::manifest, crypto::as_bytes(payload),
                                    std::vector<crypto::KeyPair>{a, b, stranger});
    from.signatures.push_back({crypto::key_id(b.public_key), crypto::Signature{}});
    const crypto::PublicKey allowed[] = {a.public_key, b.public_key};
    auto added = merge_signatures(base, from, allowed);
    REQUIRE(added);
    CHECK(*added == 1);
    CHECK(base.signatures.size() == 2);

    auto other = core::sign_envelope(core::payload_type::manifest, crypto::as_bytes("{}"),
                                     std::vector<crypto::KeyPair>{b});
    auto refused = merge_signatures(base, other, allowed);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::malformed);
}
