// A real `patchswarm-seeder serve` process on a loopback address of its own, with a repository
// and the publish CLI: the fixture of the seeder's process tests (test_seeder_serve,
// test_seeder_events).
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/http/client.hpp"
#include "seeder/report.hpp"
#include "support/process.hpp"
#include "support/root_init.hpp"

namespace patchswarm::test {

using nlohmann::json;
using namespace std::chrono_literals;

// ctest runs test cases in parallel, so each case's seeder gets its own address (Seeder sets it).
inline std::string g_host = "127.21.0.1";
inline std::string base_url() {
    return "http://" + g_host + ":18080";
}

inline Result<io::http::ClientResponse> get(const std::string& target,
                                            std::chrono::milliseconds timeout = 10s,
                                            const std::string& authorization = "") {
    io::http::ClientRequest req;
    req.url = base_url() + target;
    req.timeout = timeout;
    if (!authorization.empty()) req.headers["Authorization"] = authorization;
    return io::http::request_sync(std::move(req));
}

// A signed report of one device, one release downloading: what the seeder's intake tests post.
inline std::string report_body(const crypto::KeyPair& key, std::uint64_t counter,
                               const std::string& hostname = "desk-9") {
    const json report = {{"format", 1},
                         {"device_id", seeder::device_id_for(key.public_key)},
                         {"device_key", crypto::to_hex(key.public_key)},
                         {"hostname", hostname},
                         {"sent_at", 1},
                         {"counter", counter},
                         {"boot_id", "b"},
                         {"releases", json::array({{{"id", "KB1"},
                                                    {"manifest_sha256", ""},
                                                    {"state", "downloading"},
                                                    {"entered_at", 1},
                                                    {"progress", 0.5},
                                                    {"bytes_from_peers", 1},
                                                    {"bytes_from_seeder", 2},
                                                    {"attempts", 0},
                                                    {"reason", ""}}})}};
    const crypto::KeyPair keys[] = {key};
    const std::string payload = report.dump();
    return core::serialize_envelope(
        core::sign_envelope(core::payload_type::report, crypto::as_bytes(payload), keys));
}

// publish prints the release as one JSON line on stdout (its log line goes to stderr).
inline json release_line(const std::string& output) {
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("{")) return json::parse(line);
    }
    FAIL("no JSON line in: " << output);
    return nullptr;
}

inline json payload_of(const std::string& envelope) {
    auto env = core::parse_envelope(envelope, 1 << 20);
    REQUIRE(env);
    return json::parse(std::string(env->payload.begin(), env->payload.end()));
}

struct Seeder {
    TempDir dir{"ps-serve"};
    std::unique_ptr<Child> child;

    explicit Seeder(std::string host) {
        g_host = std::move(host);
        init_repo_root(dir / "keys", dir / "repo");
    }

    RunResult publish(const std::string& id, const std::string& content,
                      const std::vector<std::string>& extra = {}) {
        write_text(dir / "payloads" / id / "install.sh", "#!/bin/sh\n");
        write_text(dir / "payloads" / id / "data.bin", content);
        std::vector<std::string> argv{PATCHSWARM_SEEDER_BIN,
                                      "publish",
                                      "--repo",
                                      (dir / "repo").string(),
                                      "--key",
                                      (dir / "keys/release.key").string(),
                                      "--id",
                                      id,
                                      "--payload",
                                      (dir / "payloads" / id).string(),
                                      "--install",
                                      "./install.sh"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return run(argv);
    }

    void start(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> argv{
            PATCHSWARM_SEEDER_BIN, "serve", "--repo",          (dir / "repo").string(), "--http",
            g_host + ":18080",     "--bt",  g_host + ":16881", "--log-level",           "debug"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        child = std::make_unique<Child>(argv, dir / "seeder.log");
        REQUIRE(wait_until(
            [] {
                auto r = get("/healthz", 1s);
                return r && r->status == 200;
            },
            30s));
    }

    std::uint64_t feed_sequence() {
        auto r = get("/v1/feed");
        REQUIRE(r);
        REQUIRE(r->status == 200);
        return payload_of(r->body)["sequence"].get<std::uint64_t>();
    }
};

}  // namespace patchswarm::test
