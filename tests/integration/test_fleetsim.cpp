// The fleet simulator (bench/fleetsim) in the suite: 500 simulated endpoints, each with its own
// device key and loopback address, enrol with one token and long-poll a real `serve`; a real
// `publish` runs from the simulator's hook; every endpoint must be told, and every report that
// got 200 must be in fleet.db (its counter and the state it carried), read here with SQLite.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/http/client.hpp"
#include "io/sqlite.hpp"
#include "support/fleet.hpp"
#include "support/process.hpp"

using namespace patchswarm::test;
namespace io = patchswarm::io;
using nlohmann::json;

namespace {

constexpr int kEndpoints = 500;
constexpr const char* kRelease = "FLEETSIM-1";

}  // namespace

TEST_CASE("every simulated endpoint is told of a publish and every accepted report is in fleet.db",
          "[integration][fleetsim]") {
    Fleet f("127.96.0");  // 127.90-95 are the crash matrix's
    const std::string token = f.create_token({"--uses", std::to_string(kEndpoints)});
    const fs::path payload = f.make_payload("p1", 4096, 1);
    f.start_seeder();
    REQUIRE(wait_until(
        [&] {
            io::http::ClientRequest req;
            req.url = f.seeder_url() + "/healthz";
            req.timeout = std::chrono::seconds(2);
            const auto r = io::http::request_sync(req);
            return r && r->status == 200;
        },
        std::chrono::seconds(30)));

    // The hook the simulator runs at the start of each phase: the real publish.
    const fs::path hook = f.dir() / "hook.sh";
    write_text(hook, "#!/bin/sh\n[ \"$1\" = publish ] || exit 0\nexec " +
                         std::string(PATCHSWARM_SEEDER_BIN) + " publish --repo " +
                         (f.dir() / "repo").string() + " --key " + f.key_base("release1") +
                         ".key --key " + f.key_base("release2") + ".key --id " + kRelease +
                         " --payload " + payload.string() + " --install ./install.sh\n");
    ::chmod(hook.c_str(), 0755);
    const fs::path summary_file = f.dir() / "summary.json";
    const fs::path log_file = f.dir() / "endpoints.jsonl";
    const auto r = run({PATCHSWARM_FLEETSIM_BIN,
                        "--seeder",
                        f.seeder_url(),
                        "--trust",
                        f.pinned_root().string(),
                        "--endpoints",
                        std::to_string(kEndpoints),
                        "--source-base",
                        "127.97.0.1",  // 500 source addresses of their own
                        "--token",
                        token,
                        "--hook",
                        hook.string(),
                        "--phase",
                        "publish",
                        "storm",
                        "--storm-spread",
                        "2",
                        "--storm-step-ms",
                        "200",
                        "--storm-states",
                        "verified,installing,effective",
                        "--phase-timeout",
                        "240",
                        "--probe-interval-ms",
                        "0",
                        "--out",
                        summary_file.string(),
                        "--endpoint-log",
                        log_file.string()});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);

    const json summary = json::parse(read_text(summary_file));
    CHECK(summary["enrolment"]["enrolled"] == kEndpoints);
    const json& publish = summary["phases"][0];
    REQUIRE(publish["name"] == "publish");
    CHECK(publish["told"] == kEndpoints);
    CHECK(publish["not_told"] == 0);
    const std::uint64_t before = publish["feed_sequence_before"];

    // Per endpoint, from the simulator's own log: told (a feed newer than before the publish),
    // and the last report that got 200.
    std::map<std::string, std::pair<std::int64_t, std::string>> acked;  // device -> counter, state
    std::ifstream log(log_file);
    int lines = 0, told = 0;
    for (std::string line; std::getline(log, line);) {
        const json e = json::parse(line);
        ++lines;
        for (const auto& seen : e["feeds"]) {
            if (seen[0].get<std::uint64_t>() > before) {
                ++told;
                break;
            }
        }
        const std::int64_t counter = e["max_ok_counter"];
        if (counter > 0) {
            acked[e["device_id"]] = {counter, e["ok_states"].value(kRelease, std::string())};
        }
    }
    CHECK(lines == kEndpoints);
    CHECK(told == kEndpoints);
    CHECK(acked.size() == static_cast<std::size_t>(kEndpoints));

    // fleet.db holds every one of them: the counter of the last report that got 200 (or a later
    // one) and, at that counter, the state the report carried.
    auto db = io::Db::open(f.dir() / "repo/fleet.db");
    REQUIRE(db);
    auto stmt = (*db)->prepare(
        "SELECT e.counter, r.state FROM endpoints e LEFT JOIN endpoint_releases r "
        "ON r.device_id = e.device_id AND r.release_id = ?1 WHERE e.device_id = ?2");
    REQUIRE(stmt);
    int missing = 0, older = 0, other_state = 0;
    for (const auto& [device, ack] : acked) {
        stmt->reset();
        stmt->bind(1, std::string_view(kRelease)).bind(2, std::string_view(device));
        const auto row = stmt->step();
        REQUIRE(row);
        if (!*row) {
            ++missing;
            continue;
        }
        if (stmt->column_int(0) < ack.first) ++older;
        if (stmt->column_int(0) == ack.first && stmt->column_text(1) != ack.second) ++other_state;
    }
    CHECK(missing == 0);
    CHECK(older == 0);
    CHECK(other_state == 0);
    // Every endpoint went through the whole storm, and its last acknowledged state is the last.
    int effective = 0;
    for (const auto& [device, ack] : acked) effective += ack.second == "effective" ? 1 : 0;
    CHECK(effective == kEndpoints);
}
