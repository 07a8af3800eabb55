// The seeder's side of staged rollouts without processes: the rollout evaluation over fleet
// facts (stale endpoints, latched rings, forgiven failures), fleet.db's halts, ring openings and
// migration, reports with groups, the status document (stale, why, time to protection), the
// CSV export and the Prometheus text.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "base/version.hpp"
#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/sqlite.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/metrics.hpp"
#include "seeder/report.hpp"
#include "seeder/rollout_eval.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder;
using nlohmann::json;

namespace {

constexpr std::int64_t kPublished = 1'000'000;
const std::string kHash(64, 'a');

std::string device(int n) {
    char text[33];
    std::snprintf(text, sizeof text, "%032x", n);
    return text;
}

EndpointRow endpoint(int n, std::int64_t last_seen, std::vector<std::string> groups = {}) {
    EndpointRow e;
    e.device_id = device(n);
    e.hostname = "desk-" + std::to_string(n);
    e.remote_address = "10.0.0." + std::to_string(n);
    e.first_seen = kPublished;
    e.last_seen = last_seen;
    e.groups = std::move(groups);
    return e;
}

EndpointReleaseRow row(int n, core::State state, std::int64_t entered_at,
                       std::optional<core::Phase> phase = std::nullopt) {
    EndpointReleaseRow r;
    r.device_id = device(n);
    r.release_id = "KB1";
    r.manifest_sha256 = kHash;
    r.state = state;
    r.entered_at = entered_at;
    r.failed_phase = phase;
    r.reason = state == core::State::failed ? "install failed with exit code 5" : "";
    return r;
}

// Five canaries by group, all must be effective, more than 20 % failures halt.
core::Rollout canary_rollout() {
    core::Rollout r;
    core::Ring ring;
    ring.name = "canary";
    ring.groups = {"canary"};
    ring.success_bp = core::kBasisPoints;
    ring.soak_s = 60;
    ring.max_failure_bp = 2000;
    r.rings = {ring};
    return r;
}

FleetSnapshot canary_fleet(std::int64_t now) {
    FleetSnapshot f;
    for (int i = 1; i <= 5; ++i) f.endpoints.push_back(endpoint(i, now, {"canary"}));
    for (int i = 6; i <= 7; ++i) f.endpoints.push_back(endpoint(i, now, {"office"}));
    return f;
}

}  // namespace

TEST_CASE("the seeder opens the next ring after success plus soak and latches it", "[core]") {
    const core::Rollout r = canary_rollout();
    const std::int64_t now = kPublished + 1000;
    FleetSnapshot f = canary_fleet(now);
    for (int i = 1; i <= 4; ++i)
        f.releases.push_back(row(i, core::State::effective, kPublished + 100));

    auto ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, now, 300);
    CHECK(ro.staged);
    CHECK(ro.feed_open_rings == 1u);  // one canary still to go
    CHECK(ro.ring_of.at(device(1)) == 0);
    CHECK(ro.ring_of.at(device(6)) == 1);

    f.releases.push_back(row(5, core::State::effective, kPublished + 200));
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, kPublished + 259, 300);
    CHECK(ro.feed_open_rings == 1u);  // soaking
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, kPublished + 260, 300);
    CHECK(ro.feed_open_rings == 2u);

    // Latched: a canary that falls silent does not close the ring again.
    f.endpoints[0].last_seen = kPublished;
    const std::vector<std::int64_t> opened = {kPublished, kPublished + 260};
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, opened, {}, now + 5000, 300);
    CHECK(ro.feed_open_rings == 2u);
    // Reports about another manifest of the id say nothing about this one.
    ro = evaluate_release(&r, kPublished, "KB1", std::string(64, 'b'), f, {}, {}, now, 300);
    CHECK(ro.feed_open_rings == 1u);
    CHECK(ro.progress.rings[0].effective == 0);
}

TEST_CASE("two install failures among five canaries halt, a resume forgives them", "[core]") {
    const core::Rollout r = canary_rollout();
    const std::int64_t now = kPublished + 1000;
    FleetSnapshot f = canary_fleet(now);
    f.releases = {row(1, core::State::failed, kPublished + 50, core::Phase::install),
                  row(2, core::State::effective, kPublished + 50),
                  row(3, core::State::effective, kPublished + 50)};
    auto ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, now, 300);
    CHECK_FALSE(ro.progress.halted);  // 1 of 5 = 20 %, not over it

    f.releases.push_back(row(4, core::State::failed, kPublished + 60, core::Phase::verify));
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, now, 300);
    CHECK(ro.progress.halted);
    CHECK(ro.progress.halt_reason.find("ring canary") != std::string::npos);
    CHECK(ro.feed_open_rings == 1u);
    CHECK_FALSE(ro.feed_halted);  // not latched yet: serve does that

    // Download failures do not count.
    FleetSnapshot downloads = f;
    downloads.releases[3].failed_phase = core::Phase::download;
    CHECK_FALSE(evaluate_release(&r, kPublished, "KB1", kHash, downloads, {}, {}, now, 300)
                    .progress.halted);

    // Latched and listed.
    const HaltRow active{"KB1", kHash, true, "ring canary ...", "auto", now, 0};
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, std::span(&active, 1), now, 300);
    CHECK(ro.feed_halted);
    REQUIRE(ro.halt);
    CHECK(ro.halt->by == "auto");
    // A halt of another manifest of the id does not apply.
    ro = evaluate_release(&r, kPublished, "KB1", std::string(64, 'c'), f, {}, std::span(&active, 1),
                          now, 300);
    CHECK_FALSE(ro.feed_halted);

    // Resumed after both failures: they are forgiven, a new failure counts again.
    const HaltRow resumed{"KB1", kHash, false, "ring canary ...", "auto", now, now + 10};
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, std::span(&resumed, 1), now + 20,
                          300);
    CHECK_FALSE(ro.progress.halted);
    CHECK_FALSE(ro.feed_halted);
    f.releases[0].entered_at = now + 15;
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, std::span(&resumed, 1), now + 20,
                          300);
    CHECK_FALSE(ro.progress.halted);  // one new failure of five: 20 %
    f.releases[3].entered_at = now + 16;
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, std::span(&resumed, 1), now + 20,
                          300);
    CHECK(ro.progress.halted);
}

TEST_CASE("fleet.db keeps halts, resumes and ring openings, and migrates older files", "[core]") {
    test::TempDir dir("ps-fleet-rollout");
    {
        // endpoints and endpoint_releases as before rollouts.
        auto db = io::Db::open(dir / "fleet.db");
        REQUIRE(db);
        REQUIRE((*db)->exec(R"sql(
            CREATE TABLE endpoints (device_id TEXT PRIMARY KEY, device_key TEXT NOT NULL,
                hostname TEXT NOT NULL, remote_address TEXT NOT NULL, boot_id TEXT NOT NULL,
                counter INTEGER NOT NULL, sent_at INTEGER NOT NULL, first_seen INTEGER NOT NULL,
                last_seen INTEGER NOT NULL);
            CREATE TABLE endpoint_releases (device_id TEXT NOT NULL, release_id TEXT NOT NULL,
                manifest_sha256 TEXT NOT NULL, state TEXT NOT NULL, entered_at INTEGER NOT NULL,
                progress_ppm INTEGER NOT NULL, bytes_from_peers INTEGER NOT NULL,
                bytes_from_seeder INTEGER NOT NULL, attempts INTEGER NOT NULL,
                reason TEXT NOT NULL, updated_at INTEGER NOT NULL,
                PRIMARY KEY (device_id, release_id));
            INSERT INTO endpoints VALUES ('d1', 'k', 'desk-1', '10.0.0.1', 'b', 1, 1, 1, 1);
            INSERT INTO endpoint_releases VALUES ('d1', 'KB1', '', 'failed', 5, 0, 0, 0, 1,
                                                  'x', 1);)sql"));
    }
    auto db = FleetDb::open(dir / "fleet.db");
    REQUIRE(db);
    auto snap = (*db)->snapshot();
    REQUIRE(snap);
    REQUIRE(snap->endpoints.size() == 1);
    CHECK(snap->endpoints[0].groups.empty());
    REQUIRE(snap->releases.size() == 1);
    CHECK_FALSE(snap->releases[0].failed_phase.has_value());

    // Ring openings: the first time wins, in ring order.
    REQUIRE((*db)->save_ring_open("KB1", kHash, 0, 100));
    REQUIRE((*db)->save_ring_open("KB1", kHash, 0, 999));
    REQUIRE((*db)->save_ring_open("KB1", kHash, 1, 200));
    CHECK((*db)->ring_opens("KB1", kHash).value_or(std::vector<std::int64_t>{}) ==
          std::vector<std::int64_t>{100, 200});
    CHECK((*db)->ring_opens("KB1", std::string(64, 'b'))->empty());

    // Halts: latch, keep the first, resume, halt again.
    auto none = (*db)->resume("KB1", 10);
    REQUIRE_FALSE(none);
    CHECK(none.error().code == Errc::not_found);
    REQUIRE((*db)->halt("KB1", kHash, "ring canary: 40%", "auto", 300));
    REQUIRE((*db)->halt("KB1", kHash, "by hand", "manual", 301));
    auto halts = (*db)->halts();
    REQUIRE(halts);
    REQUIRE(halts->size() == 1);
    CHECK((*halts)[0].active);
    CHECK((*halts)[0].by == "auto");
    CHECK((*halts)[0].halted_at == 300);
    REQUIRE((*db)->resume("KB1", 400));
    REQUIRE((*db)->halt("KB1", kHash, "by hand", "manual", 500));
    halts = (*db)->halts();
    REQUIRE(halts);
    CHECK((*halts)[0].active);
    CHECK((*halts)[0].by == "manual");
    CHECK((*halts)[0].resumed_at == 400);  // still forgives what came before
    REQUIRE((*db)->set_meta("stale_after", "42"));
    CHECK((*db)->get_meta("stale_after").value_or(std::nullopt) ==
          std::optional<std::string>("42"));
}

TEST_CASE("reports carry groups and failed phases, bad groups are refused", "[core]") {
    std::array<std::uint8_t, 32> seed{};
    seed.fill(9);
    const auto key = crypto::keypair_from_seed(seed);
    auto report = [&](json groups, json phase) {
        json rel = {{"id", "KB1"},
                    {"manifest_sha256", kHash},
                    {"state", "failed"},
                    {"entered_at", 5},
                    {"progress", 1.0},
                    {"bytes_from_peers", 0},
                    {"bytes_from_seeder", 0},
                    {"attempts", 1},
                    {"reason", "x"}};
        if (!phase.is_null()) rel["failed_phase"] = phase;
        json doc = {{"format", 1},
                    {"device_id", device_id_for(key.public_key)},
                    {"device_key", crypto::to_hex(key.public_key)},
                    {"hostname", "desk"},
                    {"sent_at", 1},
                    {"counter", 1},
                    {"boot_id", "b"},
                    {"releases", json::array({rel})}};
        if (!groups.is_null()) doc["groups"] = groups;
        const crypto::KeyPair keys[] = {key};
        const std::string payload = doc.dump();
        return parse_report(core::serialize_envelope(
            core::sign_envelope(core::payload_type::report, crypto::as_bytes(payload), keys)));
    };
    auto ok = report(json::array({"canary", "office"}), "verify");
    REQUIRE(ok);
    CHECK(ok->groups == std::vector<std::string>{"canary", "office"});
    CHECK(ok->releases[0].failed_phase == core::Phase::verify);
    auto old = report(nullptr, nullptr);
    REQUIRE(old);
    CHECK(old->groups.empty());
    CHECK_FALSE(old->releases[0].failed_phase);
    CHECK_FALSE(report(json::array({"../etc"}), nullptr));
    CHECK_FALSE(report(json::array({"a", "a"}), nullptr));
    CHECK_FALSE(report(json::array({1}), nullptr));
    CHECK_FALSE(report(json(std::vector<std::string>(65, "g")), nullptr));
    CHECK_FALSE(report(nullptr, "reboot"));
}

TEST_CASE("status shows stale endpoints, why each one waits, rings and time to protection",
          "[core]") {
    const std::int64_t now = kPublished + 1000;
    Index index;
    index.releases = {{"KB1", 1, kHash, std::nullopt}};
    FleetSnapshot f = canary_fleet(now);
    f.endpoints[4].last_seen = now - 301;  // desk-5: silent too long
    f.releases = {row(1, core::State::effective, kPublished + 100),
                  row(2, core::State::effective, kPublished + 300),
                  row(3, core::State::reboot_pending, kPublished + 200),
                  row(4, core::State::failed, kPublished + 60, core::Phase::install),
                  row(5, core::State::effective, kPublished + 150),
                  row(6, core::State::waiting, kPublished + 10)};
    f.releases[2].reason = "reboot required: no reboot command configured";
    f.releases[5].reason = "waiting for rollout ring (everyone else) to open";
    f.endpoints[1].hostname = "=HYPERLINK(\"x\")";
    std::map<std::string, ManifestFacts> facts;
    facts["KB1"] = {"KB1", "normal", 10, kPublished, canary_rollout()};
    RolloutState state;
    state.stale_after = 300;
    state.ring_opens["KB1"] = {kPublished};

    const FleetStatus status = build_status("repo", index, facts, f, 3, now, {}, state);
    const auto& rs = status.releases.at(0);
    CHECK(rs.effective == 2);  // the stale one is not counted
    CHECK(rs.time_to_protection.effective == 2);
    CHECK(rs.time_to_protection.first == 100);
    CHECK(rs.time_to_protection.median == 100);
    CHECK(rs.time_to_protection.last == 300);
    REQUIRE(rs.rings.size() == 2);
    CHECK(rs.rings[0].open);
    CHECK_FALSE(rs.rings[1].open);
    // 1 failed of 4 reachable (desk-5 is stale): 25 %, over 20 %; serve has not latched it.
    CHECK(rs.halt_pending);
    CHECK_FALSE(rs.halted);

    const json doc = json::parse(status_json(status));
    CHECK(doc["stale_after"] == 300);
    const json& rel = doc["releases"][0];
    CHECK(rel["counts"]["stale"] == 1);
    CHECK(rel["counts"]["offline_effective"] == 1);
    CHECK(rel["counts"]["offline_not_patched"] == 0);
    CHECK(rel["offline_effective"] == 1);
    CHECK(rel["published_at"] == kPublished);
    CHECK(rel["time_to_protection"]["p95_s"] == 300);
    CHECK(rel["effective_times"] == json::array({100, 300}));  // the curve: stale one left out
    CHECK(rel["halted"] == false);
    CHECK(rel["halt"]["latched"] == false);
    CHECK(rel["halt"]["by"] == "auto");
    std::map<std::string, json> by_host;
    for (const auto& e : rel["not_effective"]) by_host[e["hostname"]] = e;
    CHECK(by_host.at("desk-5")["state"] == "offline_effective");
    CHECK(by_host.at("desk-5")["last_state"] == "effective");
    CHECK(by_host.at("desk-5")["why"] == "offline since " + core::format_utc(now - 301) +
                                             ", last known effective (since " +
                                             core::format_utc(kPublished + 150) + ")");
    CHECK(by_host.at("desk-3")["why"] == "reboot pending since " +
                                             core::format_utc(kPublished + 200) +
                                             ": reboot required: no reboot command configured");
    CHECK(by_host.at("desk-4")["why"] == "failed (attempt 0): install failed with exit code 5");
    CHECK(by_host.at("desk-6")["why"] == "waiting for rollout ring (everyone else) to open");
    CHECK(by_host.at("desk-6")["ring"] == "(everyone else)");
    CHECK(by_host.at("desk-7")["state"] == "unreported");
    CHECK(by_host.at("desk-4")["ring"] == "canary");

    const std::string csv = status_csv(status);
    CHECK(csv.rfind("release,device_id,hostname,site,groups,ring,state,since,last_seen,effective,"
                    "why\r\n",
                    0) == 0);
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 8);                // header + 7 endpoints
    CHECK(csv.find("\"'=HYPERLINK(\"\"x\"\")\"") != std::string::npos);  // never a formula
    CHECK(
        csv.find("\"desk-5\",\"auto:10.0.0.0/24\",\"canary\",\"canary\",\"offline_effective\",") !=
        std::string::npos);

    const std::string text = render_status(status, false);
    CHECK(text.find("ring       canary") != std::string::npos);
    CHECK(text.find("protected  first") != std::string::npos);
    CHECK(text.find("2 of 7 endpoints · last known effective, offline 1\n") != std::string::npos);
    CHECK(text.find("  last known effective, offline (1):\n") != std::string::npos);
    CHECK(text.find("  not yet effective (4):\n") != std::string::npos);
    CHECK(text.find("stale") == std::string::npos);

    const std::vector<std::int64_t> seen = {now - 301, now, now};
    const std::string metrics = render_metrics(status, {7, 3, 1, 2}, seen);
    CHECK(metrics.find("# HELP patchswarm_endpoints ") != std::string::npos);
    CHECK(metrics.find("# TYPE patchswarm_endpoints gauge\n") != std::string::npos);
    CHECK(metrics.find("patchswarm_endpoints{release=\"KB1\",state=\"offline_effective\"} 1\n") !=
          std::string::npos);
    CHECK(metrics.find("patchswarm_endpoints{release=\"KB1\",state=\"offline_not_patched\"} 0\n") !=
          std::string::npos);
    CHECK(metrics.find("state=\"stale\"") == std::string::npos);  // no endpoint counted twice
    CHECK(metrics.find("patchswarm_tracker_requests_total 7\n") != std::string::npos);
    CHECK(metrics.find("patchswarm_build_info{version=\"" + std::string(kVersion) + "\"} 1\n") !=
          std::string::npos);
    CHECK(metrics.find("patchswarm_reports_total{result=\"refused\"} 1\n") != std::string::npos);
    CHECK(metrics.find("patchswarm_ring_open{release=\"KB1\",ring=\"canary\"} 1\n") !=
          std::string::npos);
    CHECK(metrics.find("patchswarm_report_lag_seconds{quantile=\"1\"} 301\n") != std::string::npos);
    CHECK(metrics.find("patchswarm_time_to_protection_seconds{release=\"KB1\",quantile=\"0.5\"} "
                       "100\n") != std::string::npos);
}

TEST_CASE("time to protection uses nearest-rank percentiles", "[core]") {
    const auto t = time_to_protection({50, 10, 40, 30, 20, 60, 70, 80, 90, 100});
    CHECK(t.effective == 10);
    CHECK(t.first == 10);
    CHECK(t.median == 50);
    CHECK(t.p95 == 100);
    CHECK(t.last == 100);
    const auto empty = time_to_protection({});
    CHECK(empty.effective == 0);
    CHECK_FALSE(empty.median);
}

TEST_CASE("an empty ring holds the next one until a member reports or the deadline", "[core]") {
    core::Rollout r = canary_rollout();
    r.rings[0].success_bp = 0;  // canaries need not succeed; they must exist
    const std::int64_t now = kPublished + 1000;
    FleetSnapshot f;
    f.endpoints = {endpoint(6, now, {"office"})};
    auto ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, now, 300);
    CHECK(ro.feed_open_rings == 1u);
    CHECK_FALSE(ro.progress.rings[1].open);
    CHECK(ro.progress.waiting_for == "ring canary has no members yet (none has reported)");
    // A canary reports: the ring has a member, and with threshold 0 the next ring opens.
    f.endpoints.push_back(endpoint(1, now, {"canary"}));
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, now, 300);
    CHECK(ro.feed_open_rings == 2u);
    // Without members but past the deadline, everything opens.
    r.deadline = now;
    f.endpoints.pop_back();
    ro = evaluate_release(&r, kPublished, "KB1", kHash, f, {}, {}, now, 300);
    CHECK(ro.feed_open_rings == 2u);
}

TEST_CASE("an offline endpoint that was not patched is told apart from one that was", "[core]") {
    const std::int64_t now = kPublished + 1000;
    Index index;
    index.releases = {{"KB1", 1, kHash, std::nullopt}};
    FleetSnapshot f = canary_fleet(now);
    f.endpoints[0].last_seen = now - 400;  // desk-1: effective, then silent
    f.endpoints[1].last_seen = now - 400;  // desk-2: downloading, then silent
    f.endpoints[6].last_seen = now - 400;  // desk-7: never reported the release, then silent
    f.releases = {row(1, core::State::effective, kPublished + 100),
                  row(2, core::State::downloading, kPublished + 50)};
    std::map<std::string, ManifestFacts> facts;
    facts["KB1"] = {"KB1", "normal", 10, kPublished, std::nullopt};
    RolloutState state;
    state.stale_after = 300;
    const FleetStatus status = build_status("repo", index, facts, f, 3, now, {}, state);
    const auto& rs = status.releases.at(0);
    CHECK(rs.effective == 0);
    CHECK(rs.offline_effective == 1);
    std::map<std::string, const EndpointStatus*> by_host;
    for (const auto& e : rs.all) by_host[e.hostname] = &e;
    CHECK(by_host.at("desk-1")->state == "offline_effective");
    CHECK(by_host.at("desk-2")->state == "offline_not_patched");
    CHECK(by_host.at("desk-2")->why == "offline since " + core::format_utc(now - 400) +
                                           ", not patched (last state downloading since " +
                                           core::format_utc(kPublished + 50) + ")");
    CHECK(by_host.at("desk-7")->state == "offline_not_patched");
    std::map<std::string, std::size_t> counts(rs.counts.begin(), rs.counts.end());
    CHECK(counts.at("stale") == 3);
    CHECK(counts.at("offline_effective") == 1);
    CHECK(counts.at("offline_not_patched") == 2);
    // The unpatched ones need attention before anything that is merely on its way.
    CHECK(rs.not_effective.front().state == "offline_not_patched");
    CHECK(rs.not_effective.back().state == "offline_effective");
}

TEST_CASE("a failed endpoint says whether another attempt is coming", "[core]") {
    const std::int64_t now = kPublished + 1000;
    Index index;
    index.releases = {{"KB1", 1, kHash, std::nullopt}};
    FleetSnapshot f = canary_fleet(now);
    f.releases = {row(1, core::State::failed, kPublished + 100, core::Phase::install),
                  row(2, core::State::failed, kPublished + 100, core::Phase::install),
                  row(3, core::State::failed, kPublished + 100, core::Phase::install),
                  row(4, core::State::waiting, kPublished + 100)};
    for (auto* r : {&f.releases[0], &f.releases[1], &f.releases[2]}) {
        r->reason = "install failed with exit code 5: disk full";
    }
    f.releases[0].attempts = 2;
    f.releases[0].next_attempt_at = now + 120;
    f.releases[0].max_attempts = 5;
    f.releases[1].attempts = 5;
    f.releases[1].next_attempt_at = 0;
    f.releases[1].max_attempts = 5;
    f.releases[2].attempts = 1;  // an older agent: no retry plan in its report
    f.releases[3].deferred_until = now + 3600;
    f.releases[3].deferred_by = "alice";
    f.releases[3].reason = "install deferred until ...";
    std::map<std::string, ManifestFacts> facts;
    facts["KB1"] = {"KB1", "normal", 10, kPublished, std::nullopt};
    const FleetStatus status = build_status("repo", index, facts, f, 3, now);
    std::map<std::string, const EndpointStatus*> by_host;
    for (const auto& e : status.releases.at(0).all) by_host[e.hostname] = &e;
    CHECK(by_host.at("desk-1")->why == "failed, retry 3 of 5 at " + core::format_utc(now + 120) +
                                           ": install failed with exit code 5: disk full");
    CHECK(by_host.at("desk-2")->why ==
          "gave up after 5 attempts: install failed with exit code 5: disk full");
    CHECK(by_host.at("desk-3")->why ==
          "failed (attempt 1): install failed with exit code 5: disk full");
    CHECK(by_host.at("desk-4")->why == "deferred by alice until " + core::format_utc(now + 3600));
    const json doc = json::parse(status_json(status));
    for (const auto& e : doc["releases"][0]["not_effective"]) {
        if (e["hostname"] == "desk-1") {
            CHECK(e["next_attempt_at"] == now + 120);
            CHECK(e["max_attempts"] == 5);
        }
        if (e["hostname"] == "desk-4") CHECK(e["deferred_by"] == "alice");
    }
}
