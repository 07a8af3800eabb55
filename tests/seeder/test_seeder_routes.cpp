// The seeder's routes as a pure function (seeder/routes.hpp): one table of requests and the
// answers they must get, over fakes of the catalog, report intake and fleet view. No sockets.
#include <catch2/catch.hpp>
#include <variant>

#include "seeder/routes.hpp"
#include "support/fake_env.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder;

namespace {

class FakeReleases final : public ReleaseView {
  public:
    bool is_listed(std::string_view id) const override { return id == "KB1"; }
    bool is_ssl_torrent(std::string_view) const override { return false; }
};

class FakeFleet final : public FleetView {
  public:
    Result<std::string> status_json() override { return std::string(R"({"endpoints":0})"); }
    Result<std::string> metrics(const ServeCounters& c) override {
        return "patchswarm_feeds_signed_total " + std::to_string(c.feeds_signed) + "\n";
    }
};

struct Fixture {
    test::TempDir dir{"ps-routes"};
    RepoPaths paths{dir / "repo"};
    FakeReleases releases;
    FakeFleet fleet;
    tracker::PeerTable table{*tracker::make_address("127.0.0.1", 6881)};
    core::RateLimiter limiter{core::RateLimit{1, 3}};
    ServeCounters counters;
    test::FakeEnv env;
    RouteContext ctx{paths,
                     releases,
                     table,
                     nullptr,
                     fleet,
                     limiter,
                     counters,
                     env,
                     "s3cr3t",
                     AdminAuth::remote,
                     std::chrono::seconds(30),
                     0};

    Fixture() {
        test::write_text(paths.manifest("KB1"), "{\"manifest\":1}");
        test::write_text(paths.payload_dir("KB1") / "KB1" / "data.bin", "0123456789");
    }
};

io::http::Request request(std::string method, std::string path, std::string remote = "127.0.0.1",
                          std::map<std::string, std::string> query = {}) {
    io::http::Request req;
    req.method = std::move(method);
    req.path = path;
    req.target = std::move(path);
    req.query = std::move(query);
    req.remote_address = remote;
    req.client = std::move(remote);
    return req;
}

int status_of(const RouteResult& r) {
    REQUIRE(std::holds_alternative<io::http::Response>(r));
    return std::get<io::http::Response>(r).status;
}

}  // namespace

TEST_CASE("every route answers its request without a socket", "[core]") {
    struct Case {
        const char* method;
        const char* path;
        const char* remote;
        int status;
    };
    const Case cases[] = {
        {"GET", "/healthz", "127.0.0.1", 200},
        {"HEAD", "/healthz", "127.0.0.1", 200},
        {"POST", "/healthz", "127.0.0.1", 405},
        {"GET", "/v1/report", "127.0.0.1", 405},
        {"POST", "/v1/enroll", "10.0.0.9", 404},  // enrolment off: no fleet CA
        {"GET", "/v1/enroll", "10.0.0.9", 405},
        {"GET", "/v1/releases/KB1/manifest", "10.0.0.9", 200},
        {"GET", "/v1/releases/KB1/torrent", "10.0.0.9", 404},  // listed, file missing
        {"GET", "/v1/releases/KB1/other", "10.0.0.9", 404},
        {"GET", "/v1/releases/NOPE/manifest", "10.0.0.9", 404},
        {"GET", "/v1/releases/..%2fx/manifest", "10.0.0.9", 400},
        {"GET", "/v1/releases/../manifest", "10.0.0.9", 400},
        {"GET", "/v1/releases/KB1", "10.0.0.9", 404},
        {"GET", "/v1/payload/KB1/KB1/../../manifest.json", "10.0.0.9", 400},
        {"GET", "/v1/payload/KB1/KB1\\data.bin", "10.0.0.9", 400},
        {"GET", "/v1/payload/NOPE/x", "10.0.0.9", 404},
        {"GET", "/v1/payload/KB1", "10.0.0.9", 404},
        // No peer of it has announced yet: every address has a gateway slot of its site.
        {"GET", "/v1/payload/KB1/KB1/data.bin", "10.0.0.9", 200},
        {"GET", "/v1/root/1.json", "10.0.0.9", 404},  // no root committed in this folder
        {"GET", "/v1/root/staged.json", "10.0.0.9", 404},
        {"GET", "/nothing", "10.0.0.9", 404},
        // The fleet view: loopback is trusted (AdminAuth::remote), anyone else needs the token.
        {"GET", "/v1/status", "127.0.0.1", 200},
        {"GET", "/metrics", "127.0.0.1", 200},
        {"GET", "/dashboard", "127.0.0.1", 200},
        {"GET", "/", "127.0.0.1", 200},
        {"GET", "/v1/status", "10.0.0.9", 401},
        {"GET", "/metrics", "10.0.0.9", 401},
        {"GET", "/", "10.0.0.9", 401},
    };
    for (const auto& c : cases) {
        Fixture f;  // a fresh rate limiter per case
        INFO(c.method << " " << c.path << " from " << c.remote);
        CHECK(status_of(route(request(c.method, c.path, c.remote), f.ctx)) == c.status);
    }
}

TEST_CASE(
    "the routes hand a checked long-poll to the feed, a report to the intake, and count what they "
    "refuse",
    "[core]") {
    Fixture f;
    auto wait =
        route(request("GET", "/v1/feed", "10.0.0.9", {{"after", "7"}, {"wait", "999"}}), f.ctx);
    REQUIRE(std::holds_alternative<FeedWait>(wait));
    CHECK(std::get<FeedWait>(wait).after == 7u);
    CHECK(std::get<FeedWait>(wait).wait == std::chrono::seconds(60));  // kMaxFeedWait
    CHECK(status_of(route(request("GET", "/v1/feed", "10.0.0.9", {{"after", "x"}}), f.ctx)) == 400);

    Fixture g;
    // A report is handed on (to the report intake, answered once stored), past the limiter.
    CHECK(std::holds_alternative<ReportPost>(
        route(request("POST", "/v1/report", "10.0.0.8"), g.ctx)));
    CHECK(status_of(route(request("GET", "/metrics", "10.0.0.8"), g.ctx)) == 401);
    CHECK(g.counters.http_unauthorized == 1);
    CHECK(status_of(route(request("GET", "/healthz", "10.0.0.8"), g.ctx)) == 200);
    // The bucket holds 3 and the fake clock does not move: the fourth request is refused.
    const auto limited = route(request("GET", "/healthz", "10.0.0.8"), g.ctx);
    REQUIRE(status_of(limited) == 429);
    CHECK(std::get<io::http::Response>(limited).headers.count("Retry-After") == 1);
    CHECK(g.counters.http_rate_limited == 1);
    CHECK(status_of(route(request("GET", "/healthz", "10.0.0.7"), g.ctx)) == 200);  // another

    // Without gateway slots, an address the tracker has not seen gets no web seed.
    Fixture no_slots;
    no_slots.table = tracker::PeerTable(*tracker::make_address("127.0.0.1", 6881),
                                        tracker::TableOptions{.gateways = 0});
    CHECK(status_of(route(request("GET", "/v1/payload/KB1/KB1/data.bin", "10.0.0.9"),
                          no_slots.ctx)) == 403);

    Fixture h;
    auto authorised = request("GET", "/v1/status", "10.0.0.9");
    authorised.headers["authorization"] = "Bearer s3cr3t";
    const auto status = route(authorised, h.ctx);
    REQUIRE(status_of(status) == 200);
    CHECK(std::get<io::http::Response>(status).body == R"({"endpoints":0})");
}
