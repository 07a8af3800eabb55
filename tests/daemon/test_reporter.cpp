// daemon/reporter: a report the seeder defers (503 + Retry-After) is sent again once that time
// has passed, with the state as it is then, and reports asked for meanwhile wait for it rather
// than add to the seeder's load. The seeder is an HTTP server on the test's own io_context; the
// random source is the FakeEnv's, fixed.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/envelope.hpp"
#include "daemon/endpoint_store.hpp"
#include "daemon/reporter.hpp"
#include "daemon/seeder_client.hpp"
#include "io/http/server.hpp"
#include "support/fake_env.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Drives `io` until `done()` or the deadline; false on the deadline.
template <class Pred>
bool run_until(boost::asio::io_context& io, Pred done, Clock::duration timeout = 20s) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        if (io.stopped()) io.restart();
        io.run_one_until(deadline);
    }
    return true;
}

std::uint64_t counter_of(const std::string& envelope) {
    auto env = core::parse_envelope(envelope, 1 << 20);
    REQUIRE(env);
    return nlohmann::json::parse(std::string(env->payload.begin(), env->payload.end()))["counter"];
}

}  // namespace

TEST_CASE("a deferred report is sent again after Retry-After, and nothing is sent meanwhile",
          "[net]") {
    test::TempDir dir("ps-reporter");
    boost::asio::io_context io;
    test::FakeEnv env;
    env.on_random([] { return std::uint64_t{0}; });  // no extra spread: exactly Retry-After

    struct Post {
        Clock::time_point at;
        std::uint64_t counter;
    };
    std::vector<Post> posts;
    int busy_answers = 2;
    io::http::Server server(io, [&](io::http::Request&& req, io::http::Respond respond) {
        posts.push_back({Clock::now(), counter_of(req.body)});
        if (busy_answers-- > 0) {
            auto res = io::http::json_response(503, R"({"error":"busy"})");
            res.headers["Retry-After"] = "1";
            return respond(std::move(res));
        }
        respond(io::http::json_response(200, R"({"ok":true})"));
    });
    auto port = server.listen("127.31.1.1:0");
    REQUIRE(port);

    auto store = daemon::EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    daemon::SeederClient seeders({"http://127.31.1.1:" + std::to_string(*port)}, "");
    daemon::ReporterIdentity identity;
    identity.device_key = crypto::generate_keypair();
    identity.device_id = "dev";
    identity.hostname = "desk";
    daemon::Reporter reporter(
        io, env, **store, seeders, identity, [] { return std::vector<daemon::ReleaseReport>{}; },
        [] { return std::string("boot"); });

    reporter.send_now();
    REQUIRE(run_until(io, [&] { return reporter.retry_pending(); }));
    CHECK(posts.size() == 1);
    CHECK(reporter.failures() == 1);
    // Asked for while the seeder wants us to wait: folded into the retry, not sent now.
    reporter.send_now();
    reporter.send_now();
    CHECK(posts.size() == 1);

    REQUIRE(run_until(io, [&] {
        return posts.size() == 3 && !reporter.retry_pending() && reporter.failures() == 0;
    }));
    REQUIRE(posts.size() == 3);
    // Each retry waited at least what the seeder asked, and carried a fresh snapshot.
    CHECK(posts[1].at - posts[0].at >= 1s);
    CHECK(posts[2].at - posts[1].at >= 1s);
    CHECK(posts[0].counter < posts[1].counter);
    CHECK(posts[1].counter < posts[2].counter);
    reporter.stop();
}
