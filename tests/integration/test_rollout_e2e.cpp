// Staged rollout end to end with the real binaries on loopback: a canary ring that fails halts
// the release in the signed feed; reboot_pending until the boot id changes; a silent endpoint
// turns stale; windows, deferral and the deadline; halt/resume by hand; --csv and /metrics.
// Each test case has its own 127.5N.0.x addresses (ctest -j2 runs them side by side).
#include <catch2/catch.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/http/client.hpp"
#include "support/fleet.hpp"
#include "support/signing.hpp"

using nlohmann::json;
using patchswarm::test::Fleet;
using patchswarm::test::read_text;
using patchswarm::test::run;
using patchswarm::test::wait_until;
using patchswarm::test::write_random;
using patchswarm::test::write_text;
namespace fs = std::filesystem;
namespace http = patchswarm::io::http;
using namespace std::chrono_literals;

namespace {

constexpr auto kConverge = std::chrono::seconds(120);

std::string dump_logs(const Fleet& f, std::vector<int> eps) {
    auto tail = [](const std::string& s) {
        return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
    };
    std::string out = "--- seeder.log (tail)\n" + tail(read_text(f.dir() / "seeder.log"));
    for (int i : eps) {
        out += "\n--- ep" + std::to_string(i) + ".log (tail)\n" + tail(f.log_of_endpoint(i));
    }
    return out;
}

// A payload whose install fails on endpoints whose state folder holds a file "fail-install".
fs::path flaky_payload(const Fleet& f, const std::string& name) {
    const fs::path p = f.dir() / "payloads" / name;
    write_random(p / "data/patch.bin", 64 << 10, 7);
    write_text(p / "install.sh",
               "#!/bin/sh\n"
               "echo \"installed $PATCHSWARM_RELEASE_ID\" >> "
               "\"$PATCHSWARM_STATE_DIR/installed-$PATCHSWARM_RELEASE_ID\"\n"
               "if [ -e \"$PATCHSWARM_STATE_DIR/fail-install\" ]; then echo 'disk full'; exit 5; "
               "fi\n"
               "exit 0\n");
    return p;
}

// Status 0 when the seeder cannot be reached (yet).
http::ClientResponse get(const Fleet& f, const std::string& target) {
    http::ClientRequest req;
    req.url = f.seeder_url() + target;
    req.timeout = 10s;
    auto r = http::request_sync(std::move(req));
    return r ? *r : http::ClientResponse{};
}

// The feed as the seeder signs it now (the payload of the envelope).
json current_feed(const Fleet& f) {
    const auto r = get(f, "/v1/feed");
    if (r.status != 200) return nullptr;
    auto env = patchswarm::core::parse_envelope(r.body, 1 << 20);
    if (!env) return nullptr;
    return json::parse(std::string(env->payload.begin(), env->payload.end()), nullptr, false);
}

json release_status(const Fleet& f, const std::string& id) {
    const auto s = f.seeder_status();
    if (!s.is_object()) return nullptr;
    for (const auto& rel : s["releases"]) {
        if (rel["id"] == id) return rel;
    }
    return nullptr;
}

// The seeder's line for one endpoint (by host name "desk-N") among the not-yet-effective.
json pending_line(const Fleet& f, const std::string& id, int i) {
    const auto rel = release_status(f, id);
    if (!rel.is_object()) return nullptr;
    for (const auto& e : rel["not_effective"]) {
        if (e["hostname"] == "desk-" + std::to_string(i)) return e;
    }
    return nullptr;
}

bool halted_in_feed(const Fleet& f, const std::string& id) {
    const auto feed = current_feed(f);
    if (!feed.is_object()) return false;
    for (const auto& h : feed["halted"]) {
        if (h == id) return true;
    }
    return false;
}

// Prints the logs when the test case fails (INFO would capture them before they are written).
struct LogsOnFailure {
    const Fleet& fleet;
    std::vector<int> endpoints;
    ~LogsOnFailure() {
        if (Catch::getResultCapture().lastAssertionPassed() == false) {
            std::cerr << dump_logs(fleet, endpoints) << "\n";
        }
    }
};

}  // namespace

TEST_CASE("a canary ring failing on 2 of 5 halts the release and no one else installs",
          "[integration]") {
    Fleet f("127.50.0");
    const fs::path policy = f.dir() / "rollout.json";
    // Emergency and normal releases get different schedules from the same file; this release
    // is normal: canaries by group, all must be effective and soak a minute (so that the first
    // canaries to report cannot open the next ring alone), over 20 % failures halt.
    write_text(policy, R"({"emergency":{"rings":[]},)"
                       R"("default":{"rings":[{"name":"canary","groups":["canary"],)"
                       R"("success_threshold":1,"soak_s":60,"max_failure_rate":0.2}]}})");
    REQUIRE(f.publish("KB-CANARY", flaky_payload(f, "KB-CANARY"),
                      {"--rollout", policy.string(), "--reboot", "none"})
                .exit_code == 0);
    f.start_seeder({"--stale-after", "60"});
    for (int i = 0; i < 2; ++i) write_text(f.state_dir(i) / "fail-install", "x");
    for (int i = 0; i < 5; ++i) f.start_endpoint(i, {"--group", "canary", "--max-attempts", "1"});
    for (int i = 5; i < 7; ++i) f.start_endpoint(i, {"--group", "office"});

    const LogsOnFailure logs{f, {0, 2, 5}};
    REQUIRE(wait_until([&] { return halted_in_feed(f, "KB-CANARY"); }, kConverge));
    // A canary that got there before the halt installed (and the bad ones failed); the others
    // stop where they are, like everyone else. The rate counts the canaries the seeder knows,
    // so the first failure may already halt while some canaries have not reported yet.
    const auto halted_wait = [&](int i) {
        const auto r = f.release(i, "KB-CANARY");
        return r.is_object() && r["state"] == "waiting" && r["reason"] == "release halted";
    };
    int failed = 0;
    for (int i = 0; i < 2; ++i) {
        REQUIRE(wait_until([&] { return f.state(i, "KB-CANARY") == "failed" || halted_wait(i); },
                           kConverge));
        if (f.state(i, "KB-CANARY") == "failed") ++failed;
    }
    CHECK(failed >= 1);
    for (int i = 2; i < 5; ++i) {
        REQUIRE(wait_until([&] { return f.state(i, "KB-CANARY") == "effective" || halted_wait(i); },
                           kConverge));
    }

    // Endpoints outside the canary ring know of the release, wait, and say why.
    for (int i = 5; i < 7; ++i) {
        REQUIRE(wait_until([&] { return halted_wait(i); }, kConverge));
        CHECK(f.install_count(i, "KB-CANARY") == 0);
    }

    // The seeder says why: which ring, what failure rate, and which machines wait for what.
    REQUIRE(wait_until(
        [&] {
            const auto e = pending_line(f, "KB-CANARY", 5);
            const auto r = release_status(f, "KB-CANARY");
            return e.is_object() && e["why"] == "release halted" && r["reported"] == 7;
        },
        30s));
    const auto rel = release_status(f, "KB-CANARY");
    CHECK(rel["halted"] == true);
    CHECK(rel["halt"]["by"] == "auto");
    CHECK(rel["halt"]["reason"].get<std::string>().find("ring canary") != std::string::npos);
    REQUIRE(rel["rings"].size() == 2);
    CHECK(rel["rings"][0]["name"] == "canary");
    CHECK(rel["rings"][0]["members"] == 5);
    CHECK(rel["rings"][0]["failed"] == failed);
    CHECK(rel["rings"][1]["open"] == false);
    for (int i = 0; i < 2; ++i) {
        const auto line = pending_line(f, "KB-CANARY", i);
        CHECK(line["ring"] == "canary");
        if (line["state"] == "failed") {
            CHECK(line["why"].get<std::string>().find("disk full") != std::string::npos);
        }
    }
    CHECK(pending_line(f, "KB-CANARY", 5)["ring"] == "(everyone else)");
    // The feed never opened the next ring.
    const auto feed = current_feed(f);
    REQUIRE(feed.is_object());
    CHECK(feed["releases"][0]["open_rings"] == 1);
    for (int i = 5; i < 7; ++i) CHECK(f.install_count(i, "KB-CANARY") == 0);
}

TEST_CASE("a release needing a reboot is reboot_pending until the boot id changes",
          "[integration]") {
    Fleet f("127.51.0");
    REQUIRE(
        f.publish("KB-REBOOT", f.make_payload("KB-REBOOT", 64 << 10, 3), {"--reboot", "required"})
            .exit_code == 0);
    f.start_seeder();
    f.start_endpoint(0);
    const LogsOnFailure logs{f, {0}};
    REQUIRE(f.wait_state(0, "KB-REBOOT", "reboot_pending", kConverge));
    // Without a reboot command the agent only records that a reboot is needed.
    REQUIRE(wait_until(
        [&] {
            const auto r = f.release(0, "KB-REBOOT");
            return r.is_object() && r["reason"] == "reboot required: no reboot command configured";
        },
        30s));
    REQUIRE(wait_until(
        [&] {
            const auto e = pending_line(f, "KB-REBOOT", 0);
            return e.is_object() && e["state"] == "reboot_pending" &&
                   e["why"].get<std::string>().rfind("reboot pending since ", 0) == 0;
        },
        30s));
    CHECK(release_status(f, "KB-REBOOT")["effective"] == 0);

    f.reboot(0);
    REQUIRE(f.wait_state(0, "KB-REBOOT", "effective", 30s));
    REQUIRE(wait_until([&] { return release_status(f, "KB-REBOOT")["effective"] == 1; }, 30s));
    const auto ttp = release_status(f, "KB-REBOOT")["time_to_protection"];
    CHECK(ttp["effective"] == 1);
    CHECK(ttp["first_s"].is_number_integer());
    CHECK(ttp["first_s"] == ttp["last_s"]);

    // The compliance export: a header and one row, effective.
    const auto csv =
        run({PATCHSWARM_SEEDER_BIN, "status", "--repo", (f.dir() / "repo").string(), "--csv"});
    REQUIRE(csv.exit_code == 0);
    CHECK(csv.output.rfind("release,device_id,hostname,site,groups,ring,state,since,last_seen,"
                           "effective,why\r\n",
                           0) == 0);
    CHECK(csv.output.find("\"KB-REBOOT\",") != std::string::npos);
    CHECK(csv.output.find("\"desk-0\"") != std::string::npos);
    CHECK(csv.output.find(",yes,") != std::string::npos);

    // Prometheus text on the seeder's HTTP server.
    const auto metrics = get(f, "/metrics");
    CHECK(metrics.status == 200);
    CHECK(metrics.body.find("# TYPE patchswarm_endpoints gauge\n") != std::string::npos);
    CHECK(
        metrics.body.find("patchswarm_endpoints{release=\"KB-REBOOT\",state=\"effective\"} 1\n") !=
        std::string::npos);
    CHECK(metrics.body.find("patchswarm_releases 1\n") != std::string::npos);
    CHECK(metrics.body.find("# TYPE patchswarm_tracker_requests_total counter\n") !=
          std::string::npos);
    CHECK(metrics.body.find("patchswarm_bytes_total{site=") != std::string::npos);
    CHECK(metrics.body.find("patchswarm_report_lag_seconds{quantile=\"1\"}") != std::string::npos);
    CHECK(metrics.body.find("patchswarm_tracker_requests_total 0\n") == std::string::npos);
}

TEST_CASE("a stopped endpoint turns stale, and halt/resume by hand edit the signed feed",
          "[integration]") {
    Fleet f("127.52.0");
    REQUIRE(f.publish("KB-STALE", f.make_payload("KB-STALE", 64 << 10, 4), {"--reboot", "none"})
                .exit_code == 0);
    f.start_seeder({"--stale-after", "3"});
    f.start_endpoint(0);
    const LogsOnFailure logs{f, {0}};
    REQUIRE(wait_until([&] { return release_status(f, "KB-STALE")["effective"] == 1; }, kConverge));

    f.drop_endpoint(0);  // killed: it stops reporting
    REQUIRE(wait_until(
        [&] {
            const auto e = pending_line(f, "KB-STALE", 0);
            return e.is_object() && e["state"] == "offline_effective";
        },
        30s));
    const auto rel = release_status(f, "KB-STALE");
    CHECK(rel["effective"] == 0);  // never counted compliant
    CHECK(rel["counts"]["stale"] == 1);
    CHECK(rel["counts"]["offline_effective"] == 1);
    CHECK(rel["offline_effective"] == 1);
    const auto e = pending_line(f, "KB-STALE", 0);
    CHECK(e["last_state"] == "effective");
    CHECK(e["why"].get<std::string>().rfind("offline since ", 0) == 0);

    const std::string repo = (f.dir() / "repo").string();
    auto bad = run({PATCHSWARM_SEEDER_BIN, "halt", "KB-NOPE", "--repo", repo});
    CHECK(bad.exit_code != 0);
    CHECK(bad.output.find("no release KB-NOPE") != std::string::npos);
    CHECK(run({PATCHSWARM_SEEDER_BIN, "resume", "KB-STALE", "--repo", repo}).exit_code != 0);

    REQUIRE(run({PATCHSWARM_SEEDER_BIN, "halt", "KB-STALE", "--repo", repo, "--reason", "bad"})
                .exit_code == 0);
    REQUIRE(wait_until([&] { return halted_in_feed(f, "KB-STALE"); }, 30s));
    const auto halted = release_status(f, "KB-STALE");
    CHECK(halted["halt"]["by"] == "manual");
    CHECK(halted["halt"]["reason"] == "halted by hand: bad");
    REQUIRE(run({PATCHSWARM_SEEDER_BIN, "resume", "KB-STALE", "--repo", repo}).exit_code == 0);
    REQUIRE(wait_until([&] { return !halted_in_feed(f, "KB-STALE"); }, 30s));
    CHECK(release_status(f, "KB-STALE")["halted"] == false);
}

TEST_CASE(
    "outside its window an endpoint waits, a deferral holds to the deadline, then it "
    "installs and reboots on its own",
    "[integration]") {
    Fleet f("127.53.0");
    // A one-hour window twelve hours from now (UTC): certainly closed during the test.
    const auto now = patchswarm::test::wall_now();
    const int hour = static_cast<int>((now / 3600 + 12) % 24);
    char start[8], end[8];
    std::snprintf(start, sizeof start, "%02d:00", hour);
    std::snprintf(end, sizeof end, "%02d:00", hour + 1);  // "24:00" is the end of the day
    const fs::path policy = f.dir() / "rollout.json";
    write_text(policy, std::string(R"({"rings":[],"windows":[{"group":"office","days":["mon",)") +
                           R"("tue","wed","thu","fri","sat","sun"],"start":")" + start +
                           R"(","end":")" + end + R"(","tz":"UTC"}]})");
    REQUIRE(f.publish("KB-WINDOW", f.make_payload("KB-WINDOW", 64 << 10, 5),
                      {"--rollout", policy.string(), "--deadline", "+60s", "--reboot", "required"})
                .exit_code == 0);
    // The "reboot command" changes the boot id, as a real reboot would.
    const fs::path reboot = f.dir() / "reboot.sh";
    write_text(reboot, "#!/bin/sh\necho rebooted-by-command > '" + f.boot_id_file(0).string() +
                           "'\necho \"$PATCHSWARM_RELEASE_ID\" >> '" +
                           (f.dir() / "reboots").string() + "'\n");
    fs::permissions(reboot, fs::perms::owner_all);
    f.start_seeder();
    f.start_endpoint(0, {"--group", "office", "--reboot-command", reboot.string()});
    const LogsOnFailure logs{f, {0}};

    REQUIRE(wait_until(
        [&] {
            const auto r = f.release(0, "KB-WINDOW");
            return r.is_object() && r["state"] == "waiting" &&
                   r["reason"].get<std::string>().rfind("outside maintenance window", 0) == 0;
        },
        kConverge));

    const std::string dir = f.state_dir(0).string();
    auto unknown =
        run({PATCHSWARM_DAEMON_BIN, "defer", "KB-NOPE", "--until", "+1h", "--state-dir", dir});
    CHECK(unknown.exit_code != 0);
    CHECK(unknown.output.find("no release KB-NOPE") != std::string::npos);
    auto defer =
        run({PATCHSWARM_DAEMON_BIN, "defer", "KB-WINDOW", "--until", "+1h", "--state-dir", dir});
    REQUIRE(defer.exit_code == 0);
    CHECK(defer.output.find("the release's deadline") != std::string::npos);  // clamped
    REQUIRE(wait_until(
        [&] {
            const auto r = f.release(0, "KB-WINDOW");
            return r.is_object() && r["deferred_until"].is_number_integer() &&
                   r["reason"].get<std::string>().rfind("install deferred until ", 0) == 0;
        },
        30s));
    REQUIRE(wait_until(
        [&] {
            const auto e = pending_line(f, "KB-WINDOW", 0);
            return e.is_object() && e["deferred_until"].is_number_integer() &&
                   e["why"].get<std::string>().rfind("install deferred until ", 0) == 0;
        },
        30s));
    CHECK(f.install_count(0, "KB-WINDOW") == 0);

    // At the deadline it installs, runs the reboot command, and is effective after "reboot".
    REQUIRE(f.wait_state(0, "KB-WINDOW", "effective", kConverge));
    CHECK(f.install_count(0, "KB-WINDOW") == 1);
    CHECK(read_text(f.dir() / "reboots") == "KB-WINDOW\n");
    const auto rel = release_status(f, "KB-WINDOW");
    CHECK(rel["deadline"].is_number_integer());
}
