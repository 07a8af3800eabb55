// serve reacts to events, not to a clock: a report that meets a ring's threshold opens the next
// ring at once, and a halt or resume by hand (another process writing fleet.db) is in the signed
// feed at once. Every wait's deadline is well under serve's coarse re-check (kMaintenance), so
// these fail if only that timer noticed.
#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "seeder/report.hpp"
#include "seeder/serve_fixture.hpp"
#include "seeder/server.hpp"

using namespace patchswarm;
using namespace patchswarm::test;

namespace {

constexpr auto kPrompt = 10s;
static_assert(kPrompt < seeder::kMaintenance);

json feed_entry(const std::string& id) {
    auto r = get("/v1/feed");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    const json feed = payload_of(r->body);
    for (const auto& e : feed["releases"]) {
        if (e["id"] == id) {
            json out = e;
            out["halted"] = false;
            for (const auto& h : feed.value("halted", json::array())) {
                if (h == id) out["halted"] = true;
            }
            return out;
        }
    }
    FAIL("release " << id << " not in the feed");
    return nullptr;
}

// A canary's report: release `id` (manifest `sha`) effective.
std::string effective_report(const crypto::KeyPair& key, const std::string& id,
                             const std::string& sha) {
    const std::int64_t now = std::time(nullptr);
    const json report = {{"format", 1},
                         {"device_id", seeder::device_id_for(key.public_key)},
                         {"device_key", crypto::to_hex(key.public_key)},
                         {"hostname", "canary-1"},
                         {"sent_at", now},
                         {"counter", 1},
                         {"boot_id", "b"},
                         {"groups", json::array({"canary"})},
                         {"releases", json::array({{{"id", id},
                                                    {"manifest_sha256", sha},
                                                    {"state", "effective"},
                                                    {"entered_at", now},
                                                    {"progress", 1.0},
                                                    {"bytes_from_peers", 0},
                                                    {"bytes_from_seeder", 1},
                                                    {"attempts", 1},
                                                    {"reason", ""}}})}};
    const crypto::KeyPair keys[] = {key};
    const std::string payload = report.dump();
    return core::serialize_envelope(
        core::sign_envelope(core::payload_type::report, crypto::as_bytes(payload), keys));
}

}  // namespace

TEST_CASE("a report that meets the canary ring's threshold opens the next ring at once", "[net]") {
    Seeder s("127.21.0.6");
    write_text(s.dir / "rollout.json",
               R"({"rings":[{"name":"canary","groups":["canary"],"success_threshold":1,)"
               R"("soak_s":0,"max_failure_rate":0.5}]})");
    auto published = s.publish("KB1", "one", {"--rollout", (s.dir / "rollout.json").string()});
    REQUIRE(published.exit_code == 0);
    const std::string sha = release_line(published.output)["manifest_sha256"];
    s.start();
    CHECK(feed_entry("KB1")["open_rings"] == 1);  // no canary has reported yet

    std::array<std::uint8_t, 32> seed{};
    seed.fill(3);
    io::http::ClientRequest req;
    req.method = "POST";
    req.url = base_url() + "/v1/report";
    req.body = effective_report(crypto::keypair_from_seed(seed), "KB1", sha);
    auto posted = io::http::request_sync(std::move(req));
    REQUIRE(posted);
    REQUIRE(posted->status == 200);

    CHECK(wait_until([] { return feed_entry("KB1")["open_rings"] == 2; }, kPrompt));
    // Latched: fleet.db says ring 1 is open, so status shows it too.
    auto status =
        run({PATCHSWARM_SEEDER_BIN, "status", "--repo", (s.dir / "repo").string(), "--json"});
    REQUIRE(status.exit_code == 0);
    CHECK(json::parse(status.output)["releases"][0]["rings"][1]["open"] == true);
}

TEST_CASE("a halt and a resume by hand are in the signed feed at once", "[net]") {
    Seeder s("127.21.0.7");
    REQUIRE(s.publish("KB1", "one").exit_code == 0);
    s.start();
    const std::string repo = (s.dir / "repo").string();
    REQUIRE_FALSE(feed_entry("KB1")["halted"].get<bool>());

    REQUIRE(run({PATCHSWARM_SEEDER_BIN, "halt", "KB1", "--repo", repo}).exit_code == 0);
    CHECK(wait_until([] { return feed_entry("KB1")["halted"].get<bool>(); }, kPrompt));

    REQUIRE(run({PATCHSWARM_SEEDER_BIN, "resume", "KB1", "--repo", repo}).exit_code == 0);
    CHECK(wait_until([] { return !feed_entry("KB1")["halted"].get<bool>(); }, kPrompt));
}
