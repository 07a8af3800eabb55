// Black-box, with the real binaries on loopback (127.60.x.x): a repository whose root needs 2 of 3
// root keys and whose releases need 2 of 3 release keys; an endpoint pinned to root version 1
// follows a rotation to a new feed key and still installs the next release; after a restart,
// a server replaying an old feed or an old release is refused.
#include <catch2/catch.hpp>

#include "core/envelope.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "io/http/client.hpp"
#include "io/key_files.hpp"
#include "support/fake_seeder.hpp"
#include "support/fleet.hpp"

using namespace patchswarm;
using patchswarm::test::FakeSeeder;
using patchswarm::test::Fleet;
using patchswarm::test::read_text;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string get_body(const std::string& url) {
    io::http::ClientRequest req;
    req.url = url;
    req.timeout = 10s;
    auto r = io::http::request_sync(std::move(req));
    return r && r->status == 200 ? r->body : std::string();
}

// The feed the seeder serves now, if it is signed by `key` (else "").
std::string feed_signed_by(const Fleet& f, const crypto::PublicKey& key) {
    const std::string body = get_body(f.seeder_url() + "/v1/feed");
    auto env = core::parse_envelope(body, 1 << 20);
    if (!env) return "";
    const crypto::PublicKey keys[] = {key};
    return core::verify_envelope(*env, core::payload_type::feed, keys) ? body : "";
}

core::Feed feed_of(const std::string& envelope) {
    auto env = core::parse_envelope(envelope, 1 << 20);
    REQUIRE(env);
    auto feed = core::parse_feed(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    REQUIRE(feed);
    return *feed;
}

std::string tail(const std::string& s) {
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
}

}  // namespace

TEST_CASE("an endpoint follows a feed key rotation and refuses replays after a restart",
          "[integration]") {
    Fleet f("127.60.1");
    const fs::path repo = f.dir() / "repo";
    REQUIRE(f.publish("KB1", f.make_payload("KB1", 64 << 10, 1)).exit_code == 0);
    const std::string kb1_v1_manifest = read_text(repo / "releases/KB1/manifest.json");
    f.start_seeder();
    f.start_endpoint(0);
    INFO(tail(f.log_of_endpoint(0)));
    REQUIRE(f.wait_state(0, "KB1", "effective"));

    // Rotation: root1 and root3 sign version 2 (2 of 3 old and new root keys), new feed key.
    auto old_feed_key = io::load_public_key(repo / "keys/feed.pub");
    REQUIRE(old_feed_key);
    const auto rotated = f.rotate_root({"--new-feed-key"});
    INFO(rotated.output);
    REQUIRE(rotated.exit_code == 0);
    REQUIRE(rotated.output.find("\"committed\":true") != std::string::npos);
    auto new_feed_key = io::load_public_key(repo / "keys/feed.pub");
    REQUIRE(new_feed_key);
    REQUIRE(*new_feed_key != *old_feed_key);
    // `serve` notices the new root and signs with the new key; keep that feed for a replay.
    std::string feed_after_rotation;
    REQUIRE(wait_until(
        [&] { return !(feed_after_rotation = feed_signed_by(f, *new_feed_key)).empty(); }, 30s));

    // The next release (KB1 again, replaced: sequence 2) reaches the endpoint under root v2.
    REQUIRE(f.publish("KB1", f.make_payload("KB1-v2", 64 << 10, 2), {"--replace"}).exit_code == 0);
    REQUIRE(wait_until([&] { return f.install_count(0, "KB1") == 2; }, 90s));
    REQUIRE(f.wait_state(0, "KB1", "effective"));
    const std::string log = f.log_of_endpoint(0);
    CHECK(log.find("root version 2 accepted") != std::string::npos);
    CHECK(log.find("rotated the feed keys: feed state dropped") != std::string::npos);
    const auto accepted_feed = f.endpoint_status(0)["feed_sequence"];
    REQUIRE(accepted_feed.is_number_unsigned());
    REQUIRE(feed_of(feed_after_rotation).sequence < accepted_feed.get<std::uint64_t>());

    f.endpoint(0).stop();
    f.stop_seeder();

    // Each replay: restart the endpoint (still pinned to root version 1) against a server that
    // serves only the replayed documents; wait for the refusal in the log written since the
    // restart, and return that log.
    auto restart_against = [&](FakeSeeder& server, const std::string& refusal) {
        server.start();
        const std::size_t from = f.log_of_endpoint(0).size();
        f.start_endpoint(0, {}, server.url());
        const bool refused = wait_until(
            [&] { return f.log_of_endpoint(0).find(refusal, from) != std::string::npos; }, 30s);
        f.endpoint(0).stop();
        const std::string since = f.log_of_endpoint(0).substr(from);
        INFO(tail(since));
        CHECK(refused);
        return since;
    };

    // 1. An older feed signed by the current feed key: rollback, even after the restart.
    {
        FakeSeeder replay("127.60.1.2:18080");
        replay.routes_["/v1/feed"] = feed_after_rotation;
        const std::string log_since = restart_against(
            replay, "is lower than " + std::to_string(accepted_feed.get<std::uint64_t>()));
        // Nor is the root version rolled back by the pinned version 1 file.
        CHECK(log_since.find("trusting root version 2") != std::string::npos);
        CHECK(f.endpoint_status(0)["feed_sequence"] == accepted_feed);
    }
    // 2. A feed signed by the feed key root version 2 retired (keys/feed-retired-v1.key), even
    //    with a higher sequence.
    {
        auto retired = io::load_secret_key(repo / "keys/feed-retired-v1.key");
        REQUIRE(retired);
        REQUIRE(retired->public_key == *old_feed_key);
        core::Feed forged = feed_of(feed_after_rotation);
        forged.sequence = accepted_feed.get<std::uint64_t>() + 1000;
        const crypto::KeyPair keys[] = {*retired};
        FakeSeeder replay("127.60.1.3:18080");
        replay.routes_["/v1/feed"] = core::serialize_envelope(core::sign_envelope(
            core::payload_type::feed, crypto::as_bytes(core::serialize_feed(forged)), keys));
        restart_against(replay, "feed rejected: valid signatures from 0 trusted key(s)");
        CHECK(f.endpoint_status(0)["feed_sequence"] == accepted_feed);
    }
    // 3. The old release (sequence 1), announced by a fresh feed of the (stolen) current feed
    //    key: the manifest is refused as a rollback and nothing is installed again.
    {
        auto feed_key = io::load_secret_key(repo / "keys/feed.key");
        REQUIRE(feed_key);
        core::Feed forged = feed_of(feed_after_rotation);
        forged.sequence = accepted_feed.get<std::uint64_t>() + 2000;
        forged.releases = {
            {"KB1", 1, crypto::sha256_hex(crypto::as_bytes(kb1_v1_manifest)), std::nullopt}};
        const crypto::KeyPair keys[] = {*feed_key};
        FakeSeeder replay("127.60.1.4:18080");
        replay.routes_["/v1/feed"] = core::serialize_envelope(core::sign_envelope(
            core::payload_type::feed, crypto::as_bytes(core::serialize_feed(forged)), keys));
        replay.routes_["/v1/releases/KB1/manifest"] = kb1_v1_manifest;
        restart_against(replay, "manifest rejected: manifest sequence 1 for KB1 is lower");
        std::string reason;
        const auto status = f.endpoint_status(0);  // kept: the loop borrows from it
        for (const auto& r : status["rejected_manifests"]) {
            if (r["id"] == "KB1") reason = r["reason"];
        }
        CHECK(reason.find("lower than 2") != std::string::npos);
        CHECK(f.release(0, "KB1")["state"] == "effective");
        CHECK(f.install_count(0, "KB1") == 2);
    }
    // 4. Root version 1 or 2 replayed as version 3: rollback, and no feed is looked at.
    int address = 5;
    for (const char* old_root : {"root/1.json", "root/2.json"}) {
        INFO(old_root);
        FakeSeeder replay("127.60.1." + std::to_string(address++) + ":18080");
        replay.routes_["/v1/root/3.json"] = read_text(repo / old_root);
        replay.routes_["/v1/feed"] = feed_after_rotation;
        const std::string log_since = restart_against(replay, "root version 3 refused");
        CHECK(log_since.find("(rollback)") != std::string::npos);
        CHECK(log_since.find("feed rejected") == std::string::npos);
    }
}
