// Black-box: the real patchswarmd against a hostile "seeder" run by the test (real HTTP on
// loopback). Every malicious manifest, torrent and feed is refused with the right reason, nothing
// is installed, and nothing is written outside the endpoint's state folder.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/envelope.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
#include "io/http/client.hpp"
#include "io/key_files.hpp"
#include "io/swarm/torrent_file.hpp"
#include "support/fake_seeder.hpp"
#include "support/process.hpp"
#include "support/signing.hpp"

using namespace patchswarm;
using patchswarm::test::Child;
using patchswarm::test::FakeSeeder;
using patchswarm::test::TempDir;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;

using patchswarm::test::seal;
using patchswarm::test::wall_now;
namespace {

struct Release {
    core::Manifest manifest;
    std::vector<std::uint8_t> torrent;
};

// A real payload and torrent, with a manifest that matches them.
Release real_release(const fs::path& dir, const std::string& id, bool extra_file = false) {
    const fs::path payload = dir / id / "KB";
    patchswarm::test::write_text(payload / "install.sh", "#!/bin/sh\ntouch ../../../../PWNED\n");
    if (extra_file) patchswarm::test::write_text(payload / "evil.sh", "#!/bin/sh\n");
    auto t = io::swarm::create_torrent(payload);
    REQUIRE(t.has_value());
    Release r;
    auto& m = r.manifest;
    m.repository = "repo";
    m.id = id;
    m.sequence = 1;
    m.created = wall_now() - 10;
    m.expires = wall_now() + 86400;
    m.name = "KB";
    auto h = io::sha256_file(payload / "install.sh", 1 << 20);
    REQUIRE(h.has_value());
    m.files = {{"install.sh", fs::file_size(payload / "install.sh"), crypto::to_hex(*h)}};
    m.infohash_v2 = t->infohash_v2;
    m.install.argv = {"./install.sh"};
    r.torrent = t->bytes;
    return r;
}

std::vector<std::string> listing(const fs::path& dir, const fs::path& skip) {
    std::vector<std::string> out;
    for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
         ++it) {
        if (it->path() == skip) {
            it.disable_recursion_pending();
            continue;
        }
        out.push_back(it->path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// The repository's keys, and the pinned root naming them: root signs roots, release signs
// manifests, feed signs feeds.
struct Keys {
    crypto::KeyPair root = crypto::generate_keypair();
    crypto::KeyPair release = crypto::generate_keypair();
    crypto::KeyPair feed = crypto::generate_keypair();

    explicit Keys(const fs::path& root_file) {
        core::RootDocument doc;
        doc.expires = wall_now() + 86400;
        const crypto::PublicKey root_pub[] = {root.public_key};
        const crypto::PublicKey release_pub[] = {release.public_key};
        const crypto::PublicKey feed_pub[] = {feed.public_key};
        doc.root = core::add_role_keys(doc, root_pub, 1);
        doc.release = core::add_role_keys(doc, release_pub, 1);
        doc.feed = core::add_role_keys(doc, feed_pub, 1);
        patchswarm::test::write_text(
            root_file, seal(core::payload_type::root, core::serialize_root(doc), root));
    }
};

}  // namespace

TEST_CASE("malicious manifests and torrents are refused and nothing escapes the state folder",
          "[integration]") {
    TempDir dir("ps-hostile");
    const Keys keys(dir / "root.json");
    const auto& release_key = keys.release;
    const auto& feed_key = keys.feed;
    const auto stranger = crypto::generate_keypair();

    FakeSeeder seeder("127.20.0.1:18080");
    core::Feed feed;
    feed.repository = "repo";
    feed.sequence = 1;
    feed.issued = wall_now() - 10;
    feed.expires = wall_now() + 3600;

    // Each attack is a release id; `expect` is what the endpoint must say about it.
    std::map<std::string, std::string> expect;
    auto publish = [&](const std::string& id, const std::string& manifest_json,
                       const crypto::KeyPair& signer, const std::vector<std::uint8_t>& torrent,
                       std::uint64_t sequence = 1) {
        const auto env = seal(core::payload_type::manifest, manifest_json, signer);
        seeder.routes_["/v1/releases/" + id + "/manifest"] = env;
        seeder.routes_["/v1/releases/" + id + "/torrent"] =
            std::string(torrent.begin(), torrent.end());
        feed.releases.push_back(
            {id, sequence, crypto::sha256_hex(crypto::as_bytes(env)), std::nullopt});
    };
    auto with_path = [&](const std::string& id, const std::string& path) {
        auto r = real_release(dir.path(), id);
        std::string json = core::serialize_manifest(r.manifest);
        const std::string needle = R"("path":"install.sh")";
        json.replace(json.find(needle), needle.size(), R"("path":)" + path);
        publish(id, json, release_key, r.torrent);
    };

    with_path("dotdot", R"("../../../escape.sh")");
    expect["dotdot"] = "path";
    with_path("absolute", R"("/tmp/escape.sh")");
    expect["absolute"] = "path";
    with_path("backslash", R"("..\\escape.sh")");
    expect["backslash"] = "path";
    // (Not "nul": that id is a Windows device name, refused on its own: "win-id" below.)
    with_path("nul-byte", R"("install.sh\u0000.txt")");
    expect["nul-byte"] = "path";
    // Windows path rules hold on every endpoint, this Linux one included.
    with_path("win-device", R"("CON.sh")");
    expect["win-device"] = "reserved device name";
    with_path("win-stream", R"("install.sh:evil.exe")");
    expect["win-stream"] = "alternate data stream";
    with_path("win-drive", R"("C:/Windows/evil.exe")");
    expect["win-drive"] = "drive letter";
    {
        // A valid feed entry, but the release folder would be the device NUL on Windows.
        auto r = real_release(dir.path(), "nul");
        publish("nul", core::serialize_manifest(r.manifest), release_key, r.torrent);
        expect["nul"] = "reserved device name";
    }
    {
        auto r = real_release(dir.path(), "stranger");
        publish("stranger", core::serialize_manifest(r.manifest), stranger, r.torrent);
        expect["stranger"] = "signature";
    }
    {
        // The stolen online key tries to introduce a release of its own.
        auto r = real_release(dir.path(), "feedsigned");
        publish("feedsigned", core::serialize_manifest(r.manifest), feed_key, r.torrent);
        expect["feedsigned"] = "signature";
    }
    {
        auto r = real_release(dir.path(), "expired");
        r.manifest.created = wall_now() - 100;
        r.manifest.expires = wall_now() - 10;
        publish("expired", core::serialize_manifest(r.manifest), release_key, r.torrent);
        expect["expired"] = "expired";
    }
    {
        auto r = real_release(dir.path(), "wronghash");
        auto other = real_release(dir.path(), "other-payload", true);
        publish("wronghash", core::serialize_manifest(r.manifest), release_key, other.torrent);
        expect["wronghash"] = "info-hash";
    }
    {
        // The info-hash matches, but the torrent carries a file the manifest does not sign.
        auto r = real_release(dir.path(), "extrafile", true);
        publish("extrafile", core::serialize_manifest(r.manifest), release_key, r.torrent);
        expect["extrafile"] = "files";
    }
    seeder.routes_["/v1/feed"] =
        seal(core::payload_type::feed, core::serialize_feed(feed), feed_key);
    seeder.start();

    const fs::path state = dir / "endpoint";
    const auto before = listing(dir.path(), state);
    {
        Child agent({PATCHSWARM_DAEMON_BIN, "run", "--state-dir", state.string(), "--seeder",
                     seeder.url(), "--trust", (dir / "root.json").string(), "--bt",
                     "127.20.0.10:16881", "--no-lsd", "--heartbeat", "1"},
                    dir / "agent.log");
        auto status = [&] {
            auto r = patchswarm::test::run(
                {PATCHSWARM_DAEMON_BIN, "status", "--state-dir", state.string(), "--json"});
            return nlohmann::json::parse(r.output, nullptr, false);
        };
        // Done when every attack shows up as a rejected manifest or a rejected release.
        auto reasons = [&] {
            std::map<std::string, std::string> out;
            const auto s = status();
            if (!s.is_object()) return out;
            for (const auto& r : s["rejected_manifests"]) out[r["id"]] = r["reason"];
            for (const auto& r : s["releases"]) {
                if (r["state"] == "rejected") out[r["id"]] = r["reason"];
            }
            return out;
        };
        INFO(patchswarm::test::read_text(dir / "agent.log"));
        REQUIRE(wait_until([&] { return reasons().size() == expect.size(); },
                           std::chrono::seconds(60)));
        const auto got = reasons();
        for (const auto& [id, word] : expect) {
            INFO(id << ": " << got.at(id));
            CHECK(got.at(id).find(word) != std::string::npos);
        }
        // None of them got anywhere near an install.
        for (const auto& r : status()["releases"]) CHECK(r["state"] == "rejected");
        agent.stop();
    }
    auto after = listing(dir.path(), state);
    std::erase(after, (dir / "agent.log").string());
    CHECK(after == before);
    CHECK_FALSE(fs::exists(dir / "PWNED"));
    CHECK_FALSE(fs::exists(dir / "escape.sh"));
}

TEST_CASE("an expired feed is refused and changes nothing, the fresh one is then accepted",
          "[integration]") {
    TempDir dir("ps-hostile");
    const Keys keys(dir / "root.json");
    FakeSeeder seeder("127.20.0.3:18080");
    auto r = real_release(dir.path(), "KB-FROZEN");
    const auto manifest =
        seal(core::payload_type::manifest, core::serialize_manifest(r.manifest), keys.release);
    seeder.routes_["/v1/releases/KB-FROZEN/manifest"] = manifest;
    seeder.routes_["/v1/releases/KB-FROZEN/torrent"] =
        std::string(r.torrent.begin(), r.torrent.end());
    core::Feed feed;
    feed.repository = "repo";
    feed.sequence = 5;
    feed.releases.push_back(
        {"KB-FROZEN", 1, crypto::sha256_hex(crypto::as_bytes(manifest)), std::nullopt});
    // A freeze attack: a correctly signed feed whose time is up, replayed an hour later.
    feed.issued = wall_now() - 7200;
    feed.expires = wall_now() - 3600;
    seeder.routes_["/v1/feed"] =
        seal(core::payload_type::feed, core::serialize_feed(feed), keys.feed);
    seeder.start();

    const fs::path state = dir / "endpoint";
    Child agent({PATCHSWARM_DAEMON_BIN, "run", "--state-dir", state.string(), "--seeder",
                 seeder.url(), "--trust", (dir / "root.json").string(), "--bt", "127.20.0.11:16881",
                 "--no-lsd", "--heartbeat", "1", "--poll-wait", "1"},
                dir / "agent.log");
    auto status = [&] {
        auto res = patchswarm::test::run(
            {PATCHSWARM_DAEMON_BIN, "status", "--state-dir", state.string(), "--json"});
        return nlohmann::json::parse(res.output, nullptr, false);
    };
    INFO(patchswarm::test::read_text(dir / "agent.log"));
    REQUIRE(wait_until(
        [&] {
            const auto log = patchswarm::test::read_text(dir / "agent.log");
            return log.find("feed rejected") != std::string::npos &&
                   log.find("(expired)") != std::string::npos;
        },
        std::chrono::seconds(30)));
    const auto frozen = status();
    REQUIRE(frozen.is_object());
    CHECK(frozen["releases"].empty());
    CHECK_FALSE(fs::exists(state / "releases" / "KB-FROZEN"));

    // The same feed, fresh: now the release is known (so the refusal above was the expiry).
    feed.sequence = 6;
    feed.issued = wall_now() - 10;
    feed.expires = wall_now() + 3600;
    seeder.set_route("/v1/feed",
                     seal(core::payload_type::feed, core::serialize_feed(feed), keys.feed));
    CHECK(wait_until(
        [&] {
            const auto s = status();
            return s.is_object() && !s["releases"].empty() && s["releases"][0]["id"] == "KB-FROZEN";
        },
        std::chrono::seconds(30)));
    agent.stop();
}
