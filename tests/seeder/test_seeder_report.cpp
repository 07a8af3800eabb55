// Report intake and the fleet view: parsing and verifying signed reports (a table of bad ones),
// storing them in a real SQLite file (trust on first use, replay counter, full snapshots), and
// the status document built from it.
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/sqlite.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/report.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder;
using nlohmann::json;

namespace {

crypto::KeyPair device_key(std::uint8_t n) {
    std::array<std::uint8_t, 32> seed{};
    seed.fill(n);
    return crypto::keypair_from_seed(seed);
}

json release_json(const std::string& id, const std::string& state, double progress = 0.5) {
    return {{"id", id},
            {"manifest_sha256", std::string(64, 'a')},
            {"state", state},
            {"entered_at", 1000},
            {"progress", progress},
            {"bytes_from_peers", 300},
            {"bytes_from_seeder", 100},
            {"attempts", 0},
            {"reason", ""}};
}

json report_json(const crypto::KeyPair& key, std::uint64_t counter, json releases) {
    return {{"format", 1},
            {"device_id", device_id_for(key.public_key)},
            {"device_key", crypto::to_hex(key.public_key)},
            {"hostname", "desk-1"},
            {"sent_at", 2000},
            {"counter", counter},
            {"boot_id", "boot-1"},
            {"releases", std::move(releases)}};
}

std::string sign(const std::string& payload, const crypto::KeyPair& key,
                 std::string_view type = core::payload_type::report) {
    const crypto::KeyPair keys[] = {key};
    return core::serialize_envelope(core::sign_envelope(type, crypto::as_bytes(payload), keys));
}

std::string signed_report(const crypto::KeyPair& key, std::uint64_t counter, json releases) {
    return sign(report_json(key, counter, std::move(releases)).dump(), key);
}

Report parsed(const crypto::KeyPair& key, std::uint64_t counter, json releases) {
    auto r = parse_report(signed_report(key, counter, std::move(releases)));
    REQUIRE(r);
    return *r;
}

}  // namespace

TEST_CASE("the device id is the first 32 hex characters of the device key id", "[core]") {
    const auto key = device_key(1);
    CHECK(device_id_for(key.public_key) == crypto::key_id(key.public_key).substr(0, 32));
}

TEST_CASE("a well-formed signed report parses", "[core]") {
    const auto key = device_key(1);
    auto r = parse_report(
        signed_report(key, 7, json::array({release_json("MS08-067", "downloading", 0.25)})));
    REQUIRE(r);
    CHECK(r->device_id == device_id_for(key.public_key));
    CHECK(r->hostname == "desk-1");
    CHECK(r->counter == 7);
    CHECK(r->agent_version.empty());  // optional: agents before 0.1.0 do not send it
    REQUIRE(r->releases.size() == 1);
    CHECK(r->releases[0].state == core::State::downloading);
    CHECK(r->releases[0].progress == Approx(0.25));
    CHECK(r->releases[0].bytes_from_peers == 300);
}

TEST_CASE("bad reports are refused", "[core]") {
    const auto key = device_key(1);
    const auto other = device_key(2);
    const auto base = [&] {
        return report_json(key, 1, json::array({release_json("KB1", "effective")}));
    };
    struct Case {
        std::string name;
        std::string body;
        Errc code;
    };
    std::vector<Case> cases;
    auto with = [&](const std::string& name, const std::function<void(json&)>& mutate,
                    Errc code = Errc::malformed) {
        json doc = base();
        mutate(doc);
        cases.push_back({name, sign(doc.dump(), key), code});
    };
    cases.push_back({"signed by another key", sign(base().dump(), other), Errc::bad_signature});
    cases.push_back({"a feed, not a report", sign(base().dump(), key, core::payload_type::feed),
                     Errc::malformed});
    {
        std::string env = signed_report(key, 1, json::array());
        const auto at = env.find("\"sig\":\"") + 8;
        env[at] = env[at] == 'A' ? 'B' : 'A';
        cases.push_back({"flipped signature byte", env, Errc::bad_signature});
    }
    with("device id of another key",
         [&](json& d) { d["device_id"] = device_id_for(other.public_key); });
    with(
        "device key of another device",
        [&](json& d) {
            d["device_key"] = crypto::to_hex(other.public_key);
            d["device_id"] = device_id_for(other.public_key);
        },
        Errc::bad_signature);
    with("format 2", [](json& d) { d["format"] = 2; });
    with("missing counter", [](json& d) { d.erase("counter"); });
    with("negative counter", [](json& d) { d["counter"] = -1; });
    with("hostname with an escape sequence", [](json& d) { d["hostname"] = "desk\x1b[2J"; });
    with(
        "hostname too long", [](json& d) { d["hostname"] = std::string(256, 'h'); },
        Errc::too_large);
    with("agent version with a newline", [](json& d) { d["agent_version"] = "0.1\n0"; });
    with(
        "agent version too long",
        [](json& d) { d["agent_version"] = std::string(kMaxAgentVersionBytes + 1, '1'); },
        Errc::too_large);
    with("unknown state", [](json& d) { d["releases"][0]["state"] = "pwned"; });
    with("progress above 1", [](json& d) { d["releases"][0]["progress"] = 1.5; });
    with("progress as text", [](json& d) { d["releases"][0]["progress"] = "0.5"; });
    with("release id with a slash", [](json& d) { d["releases"][0]["id"] = "../x"; });
    with("bad manifest hash", [](json& d) { d["releases"][0]["manifest_sha256"] = "ABC"; });
    with(
        "reason too long",
        [](json& d) { d["releases"][0]["reason"] = std::string(kMaxReasonBytes + 1, 'r'); },
        Errc::too_large);
    with("release listed twice", [](json& d) { d["releases"].push_back(d["releases"][0]); });
    with(
        "too many releases",
        [](json& d) {
            json many = json::array();
            for (std::size_t i = 0; i <= kMaxReportReleases; ++i) many.push_back(i);
            d["releases"] = many;
        },
        Errc::too_large);
    {
        std::string dup = base().dump();
        dup.insert(1, "\"counter\":99,");
        cases.push_back({"duplicate key", sign(dup, key), Errc::malformed});
    }
    cases.push_back({"not JSON", "{{{", Errc::malformed});
    cases.push_back({"over 64 KiB", std::string(kMaxReportBytes + 1, ' '), Errc::too_large});

    for (const auto& c : cases) {
        INFO(c.name);
        auto r = parse_report(c.body);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == c.code);
    }
}

TEST_CASE("the fleet database pins device keys, refuses replays and keeps snapshots", "[core]") {
    test::TempDir dir("ps-fleet-db");
    auto db = FleetDb::open(dir / "fleet.db");
    REQUIRE(db);
    const auto key = device_key(1);

    auto first = (*db)->apply_report(parsed(key, 5,
                                            json::array({release_json("KB1", "downloading"),
                                                         release_json("KB2", "effective", 1)})),
                                     "10.0.0.2", 100);
    REQUIRE(first);
    CHECK(first->new_device);
    CHECK(first->changes.size() == 2);
    CHECK_FALSE(first->changes[0].from);

    SECTION("a replayed or older counter is refused and changes nothing") {
        for (std::uint64_t counter : {5, 4}) {
            auto r = (*db)->apply_report(parsed(key, counter, json::array()), "10.0.0.9", 200);
            REQUIRE_FALSE(r);
            CHECK(r.error().code == Errc::rollback);
        }
        auto snap = (*db)->snapshot();
        REQUIRE(snap);
        CHECK(snap->releases.size() == 2);
        CHECK(snap->endpoints.at(0).remote_address == "10.0.0.2");
    }
    SECTION("a newer report replaces the snapshot and lists only real changes") {
        Report newer = parsed(key, 6, json::array({release_json("KB1", "verified")}));
        newer.agent_version = "9.8.7";
        auto r = (*db)->apply_report(newer, "10.0.0.3", 300);
        REQUIRE(r);
        CHECK_FALSE(r->new_device);
        REQUIRE(r->changes.size() == 1);
        CHECK(r->changes[0].release_id == "KB1");
        CHECK(r->changes[0].from == core::State::downloading);
        CHECK(r->changes[0].to == core::State::verified);
        auto snap = (*db)->snapshot();
        REQUIRE(snap);
        REQUIRE(snap->releases.size() == 1);  // KB2 is no longer reported
        CHECK(snap->releases[0].state == core::State::verified);
        CHECK(snap->endpoints.at(0).last_seen == 300);
        CHECK(snap->endpoints.at(0).first_seen == 100);
        CHECK(snap->endpoints.at(0).agent_version == "9.8.7");
    }
    SECTION("another key for a pinned device id is refused") {
        Report forged = parsed(device_key(2), 99, json::array());
        forged.device_id = device_id_for(key.public_key);
        auto r = (*db)->apply_report(forged, "10.0.0.66", 400);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::permission);
    }
}

TEST_CASE("the feed sequence only grows, across reopening the database", "[core]") {
    test::TempDir dir("ps-fleet-seq");
    {
        auto db = FleetDb::open(dir / "fleet.db");
        REQUIRE(db);
        CHECK((*db)->feed_sequence() == std::uint64_t{0});
        CHECK((*db)->next_feed_sequence() == std::uint64_t{1});
        CHECK((*db)->next_feed_sequence() == std::uint64_t{2});
    }
    auto db = FleetDb::open(dir / "fleet.db");
    REQUIRE(db);
    CHECK((*db)->next_feed_sequence() == std::uint64_t{3});
}

TEST_CASE("the status document counts every state and lists who is not effective", "[core]") {
    Index index;
    index.releases = {{"MS08-067", 3, std::string(64, 'a'), std::nullopt}};
    FleetSnapshot fleet;
    fleet.endpoints = {{"aaaa1111", "desk-1", "10.0.0.2", "b", 1, 50, 1, {}, {}},
                       {"bbbb2222", "desk-2", "10.0.0.3", "b", 1, 50, 1, {}, {}},
                       {"cccc3333", "desk-3", "10.0.0.4", "b", 1, 50, 1, {}, {}},
                       {"dddd4444", "desk-4", "10.0.0.5", "b", 1, 50, 1, {}, {}}};
    auto row = [](std::string dev, core::State s, double p, std::string reason = "") {
        EndpointReleaseRow r;
        r.device_id = std::move(dev);
        r.release_id = "MS08-067";
        r.state = s;
        r.entered_at = 40;
        r.progress = p;
        r.bytes_from_peers = 900;
        r.bytes_from_seeder = 100;
        r.reason = std::move(reason);
        return r;
    };
    fleet.releases = {row("aaaa1111", core::State::effective, 1),
                      row("bbbb2222", core::State::downloading, 0.5),
                      row("cccc3333", core::State::failed, 0.1, "install failed\x1b[2J")};
    const std::map<std::string, ManifestFacts> facts = {
        {"MS08-067", {"KB958644", "emergency", 42, 0, std::nullopt}}};

    const FleetStatus status = build_status("repo", index, facts, fleet, 17, 100);
    REQUIRE(status.releases.size() == 1);
    const auto& rs = status.releases[0];
    CHECK(rs.endpoints == 4);
    CHECK(rs.reported == 3);
    CHECK(rs.effective == 1);
    CHECK(rs.bytes_from_peers == 2700);
    CHECK(rs.bytes_from_seeder == 300);
    REQUIRE(rs.not_effective.size() == 3);
    CHECK(rs.not_effective[0].state == "failed");  // what needs attention first
    CHECK(rs.not_effective[1].state == "unreported");
    CHECK(rs.not_effective[2].state == "downloading");

    const json doc = json::parse(status_json(status));
    CHECK(doc["format"] == 1);
    CHECK(doc["feed_sequence"] == 17);
    const json& rel = doc["releases"][0];
    CHECK(rel["counts"]["effective"] == 1);
    CHECK(rel["counts"]["failed"] == 1);
    CHECK(rel["counts"]["unreported"] == 1);
    // the nine states, unreported, stale and its two halves (offline_effective/_not_patched)
    CHECK(rel["counts"].size() == 13);
    CHECK(rel["not_effective"][1]["since"].is_null());
    CHECK(rel["severity"] == "emergency");

    const std::string tty = render_status(status, true);
    const std::string plain = render_status(status, false);
    CHECK(tty.find("[########") != std::string::npos);
    CHECK(plain.find("[#") == std::string::npos);
    CHECK(plain.find(" 25%") != std::string::npos);
    CHECK(tty.find('\x1b') == std::string::npos);  // report text cannot drive the terminal
    CHECK(plain.find("desk-3") != std::string::npos);
}

// ---- sites -----------------------------------------------------------------------------------

TEST_CASE("reports may carry LAN and WAN bytes, older reports without them are accepted",
          "[core]") {
    const auto key = device_key(1);
    json with = release_json("KB1", "downloading");
    with["bytes_from_lan"] = 700;
    with["bytes_from_wan"] = 200;
    auto r =
        parse_report(signed_report(key, 1, json::array({with, release_json("KB2", "effective")})));
    REQUIRE(r);
    CHECK(r->releases[0].bytes_from_lan == std::optional<std::uint64_t>(700));
    CHECK(r->releases[0].bytes_from_wan == std::optional<std::uint64_t>(200));
    CHECK_FALSE(r->releases[1].bytes_from_lan);
    CHECK_FALSE(r->releases[1].bytes_from_wan);

    for (const json& bad : {json(-1), json("12"), json(1.5), json(nullptr),
                            json(std::numeric_limits<std::uint64_t>::max())}) {
        INFO(bad.dump());
        json rel = release_json("KB1", "downloading");
        rel["bytes_from_wan"] = bad;
        CHECK_FALSE(parse_report(signed_report(key, 2, json::array({rel}))));
    }
}

TEST_CASE("fleet.db keeps LAN and WAN bytes, and adds their columns to an older database",
          "[core]") {
    test::TempDir dir("ps-fleet-migrate");
    const auto path = dir / "fleet.db";
    {
        // The endpoint_releases table as format 1 first shipped it.
        auto db = io::Db::open(path);
        REQUIRE(db);
        REQUIRE((*db)->exec(R"sql(
            CREATE TABLE endpoint_releases (
                device_id TEXT NOT NULL, release_id TEXT NOT NULL, manifest_sha256 TEXT NOT NULL,
                state TEXT NOT NULL, entered_at INTEGER NOT NULL, progress_ppm INTEGER NOT NULL,
                bytes_from_peers INTEGER NOT NULL, bytes_from_seeder INTEGER NOT NULL,
                attempts INTEGER NOT NULL, reason TEXT NOT NULL, updated_at INTEGER NOT NULL,
                PRIMARY KEY (device_id, release_id));
            INSERT INTO endpoint_releases VALUES ('old', 'KB0', '', 'effective', 1, 1000000,
                                                  5, 6, 0, '', 1);)sql"));
    }
    auto db = FleetDb::open(path);
    REQUIRE(db);
    const auto key = device_key(3);
    json rel = release_json("KB1", "downloading");
    rel["bytes_from_lan"] = 700;
    rel["bytes_from_wan"] = 200;
    REQUIRE((*db)->apply_report(parsed(key, 1, json::array({rel, release_json("KB2", "verified")})),
                                "10.0.0.2", 100));
    REQUIRE((*db)->save_sites({"site1=10.0.0.0/24", "site2=10.0.1.0/24,10.0.2.0/24"}));

    auto reopened = FleetDb::open(path);  // migrating twice is a no-op
    REQUIRE(reopened);
    auto snap = (*reopened)->snapshot();
    REQUIRE(snap);
    std::map<std::string, EndpointReleaseRow> rows;
    for (const auto& r : snap->releases) rows[r.release_id] = r;
    CHECK(rows.at("KB0").bytes_from_wan == std::nullopt);
    CHECK(rows.at("KB1").bytes_from_lan == std::optional<std::uint64_t>(700));
    CHECK(rows.at("KB1").bytes_from_wan == std::optional<std::uint64_t>(200));
    CHECK(rows.at("KB2").bytes_from_lan == std::nullopt);
    CHECK((*reopened)->load_sites() ==
          std::vector<std::string>{"site1=10.0.0.0/24", "site2=10.0.1.0/24,10.0.2.0/24"});
}

TEST_CASE("the status shows each site's endpoints, effective count and WAN copies", "[core]") {
    Index index;
    index.releases = {{"MS08-067", 3, std::string(64, 'a'), std::nullopt}};
    FleetSnapshot fleet;
    fleet.endpoints = {{"aaaa1111", "desk-1", "10.77.1.10", "b", 1, 50, 1, {}, {}},
                       {"bbbb2222", "desk-2", "10.77.1.11", "b", 1, 50, 1, {}, {}},
                       {"cccc3333", "desk-3", "10.77.2.10", "b", 1, 50, 1, {}, {}},
                       {"dddd4444", "desk-4", "192.168.9.4", "b", 1, 50, 1, {}, {}},
                       {"eeee5555", "desk-5", "::ffff:10.77.2.11", "b", 1, 50, 1, {}, {}}};
    auto row = [](std::string dev, core::State s, std::optional<std::uint64_t> lan,
                  std::optional<std::uint64_t> wan) {
        EndpointReleaseRow r;
        r.device_id = std::move(dev);
        r.release_id = "MS08-067";
        r.state = s;
        r.bytes_from_peers = 900;
        r.bytes_from_seeder = 100;
        r.bytes_from_lan = lan;
        r.bytes_from_wan = wan;
        return r;
    };
    fleet.releases = {row("aaaa1111", core::State::effective, 0, 1000),
                      row("bbbb2222", core::State::effective, 1000, 50),
                      row("cccc3333", core::State::downloading, 10, 20),
                      row("dddd4444", core::State::effective, std::nullopt, std::nullopt),
                      row("eeee5555", core::State::effective, 1, 2)};
    const std::map<std::string, ManifestFacts> facts = {
        {"MS08-067", {"KB958644", "emergency", 1000, 0, std::nullopt}}};
    auto sites =
        core::SiteMap::parse({"site1=10.77.1.0/24", "site2=10.77.2.0/24", "site3=10.77.3.0/24"});
    REQUIRE(sites);

    const FleetStatus status = build_status("repo", index, facts, fleet, 17, 100, *sites);
    const auto& rs = status.releases.at(0);
    REQUIRE(rs.sites.size() == 4);  // three configured (one empty), then one automatic
    CHECK(rs.sites[0].name == "site1");
    CHECK(rs.sites[0].endpoints == 2);
    CHECK(rs.sites[0].effective == 2);
    CHECK(rs.sites[0].bytes_from_wan == 1050);
    CHECK(rs.sites[0].bytes_from_lan == 1000);
    CHECK(rs.sites[0].wan_copies == Approx(1.05));
    CHECK(rs.sites[1].name == "site2");
    CHECK(rs.sites[1].endpoints == 2);
    CHECK(rs.sites[1].effective == 1);
    CHECK(rs.sites[1].bytes_from_wan == 22);
    CHECK(rs.sites[2].name == "site3");
    CHECK(rs.sites[2].endpoints == 0);
    // An endpoint that does not report the split counts the seeder as its WAN.
    CHECK(rs.sites[3].name == "auto:192.168.9.0/24");
    CHECK(rs.sites[3].bytes_from_wan == 100);
    CHECK(rs.sites[3].bytes_from_lan == 900);

    const json doc = json::parse(status_json(status));
    const json& s0 = doc["releases"][0]["sites"][0];
    CHECK(s0["name"] == "site1");
    CHECK(s0["endpoints"] == 2);
    CHECK(s0["effective"] == 2);
    CHECK(s0["bytes_from_wan"] == 1050);
    CHECK(s0["bytes_from_lan"] == 1000);
    CHECK(s0["wan_copies"].get<double>() == Approx(1.05));
    const std::string text = render_status(status, false);
    CHECK(text.find("site1") != std::string::npos);
    CHECK(text.find("1.05") != std::string::npos);
    CHECK(text.find("auto:192.168.9.0/24") != std::string::npos);
}
