// `patchswarm-seeder serve` as a real process on loopback: the long-poll answered by a publish,
// the routes with their path checks, the tracker over HTTP, and report intake.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/http/client.hpp"
#include "seeder/report.hpp"
#include "seeder/serve_fixture.hpp"

using namespace patchswarm;
using namespace patchswarm::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {}  // namespace

TEST_CASE("serve refuses a folder that is not an initialised repository", "[net]") {
    TempDir dir("ps-serve-empty");
    auto r = run({PATCHSWARM_SEEDER_BIN, "serve", "--repo", (dir / "nothing").string(), "--http",
                  "127.21.0.5:18081", "--bt", "127.21.0.5:16882"});
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("not an initialised repository") != std::string::npos);
}

TEST_CASE("a held long-poll is answered by the next publish", "[net]") {
    Seeder s("127.21.0.2");
    REQUIRE(s.publish("KB1", "one").exit_code == 0);
    s.start();
    const std::uint64_t seq = s.feed_sequence();

    auto poll = std::async(std::launch::async, [seq] {
        return get("/v1/feed?after=" + std::to_string(seq) + "&wait=30", 40s);
    });
    REQUIRE(s.publish("KB2", "two").exit_code == 0);
    const auto published = std::chrono::steady_clock::now();
    auto r = poll.get();
    const auto latency = std::chrono::steady_clock::now() - published;
    REQUIRE(r);
    REQUIRE(r->status == 200);
    const json feed = payload_of(r->body);
    CHECK(feed["sequence"].get<std::uint64_t>() > seq);
    CHECK(feed["releases"].size() == 2);
    CHECK(latency < 5s);  // the repository folder is watched (inotify)

    // Nothing new: the poll is held for `wait` seconds, then answered with the same feed.
    const auto start = std::chrono::steady_clock::now();
    auto idle = get("/v1/feed?after=" + feed["sequence"].dump() + "&wait=1", 10s);
    REQUIRE(idle);
    CHECK(std::chrono::steady_clock::now() - start >= 900ms);
    CHECK(payload_of(idle->body)["sequence"] == feed["sequence"]);
}

TEST_CASE("serve answers its routes and checks every path", "[net]") {
    Seeder s("127.21.0.3");
    REQUIRE(s.publish("KB1", "0123456789").exit_code == 0);
    s.start();

    auto manifest = get("/v1/releases/KB1/manifest");
    REQUIRE(manifest);
    CHECK(manifest->status == 200);
    CHECK(manifest->body == read_text(s.dir / "repo/releases/KB1/manifest.json"));
    auto torrent = get("/v1/releases/KB1/torrent");
    REQUIRE(torrent);
    CHECK(torrent->status == 200);
    CHECK(torrent->headers["content-type"] == "application/x-bittorrent");
    // Root versions by number, the exact committed bytes; nothing else under /v1/root/.
    auto root1 = get("/v1/root/1.json");
    REQUIRE(root1);
    CHECK(root1->status == 200);
    CHECK(root1->body == read_text(s.dir / "repo/root/1.json"));
    CHECK(payload_of(root1->body)["version"] == 1);
    for (const std::string missing : {"/v1/root/2.json", "/v1/root/01.json", "/v1/root/staged.json",
                                      "/v1/root/1", "/v1/root/-1.json"}) {
        INFO(missing);
        auto r = get(missing);
        REQUIRE(r);
        CHECK(r->status == 404);
    }

    auto file = get("/v1/payload/KB1/KB1/data.bin");
    REQUIRE(file);
    CHECK(file->status == 200);
    CHECK(file->body == "0123456789");

    for (const std::string target :
         {"/v1/payload/KB1/KB1/%2e%2e/%2e%2e/manifest.json", "/v1/releases/..%2fx/manifest",
          "/v1/payload/KB1/KB1%5cdata.bin", "/v1/feed?after=x"}) {
        INFO(target);
        auto r = get(target);
        REQUIRE(r);
        CHECK(r->status == 400);
    }
    for (const std::string target : {"/v1/releases/NOPE/manifest", "/v1/payload/NOPE/x",
                                     "/v1/releases/KB1/other", "/nothing"}) {
        INFO(target);
        auto r = get(target);
        REQUIRE(r);
        CHECK(r->status == 404);
    }
}

TEST_CASE("the tracker answers for our torrents over HTTP", "[net]") {
    Seeder s("127.21.0.1");
    auto published = s.publish("KB1", "x");
    REQUIRE(published.exit_code == 0);
    s.start();
    const std::string infohash = release_line(published.output)["infohash_v2"];
    auto bytes = crypto::from_hex(infohash.substr(0, 40));
    REQUIRE(bytes);
    const std::string hash(bytes->begin(), bytes->end());
    const std::string query = "/announce?info_hash=" + io::http::url_encode(hash) +
                              "&peer_id=-PS0001-abcdefghijkl&port=6881&compact=1&left=10";
    auto r = get(query);
    REQUIRE(r);
    CHECK(r->status == 200);
    // The seeder's own address, 127.21.0.1:16881, in compact form.
    CHECK(r->body.find(std::string("5:peers6:\x7f\x15\x00\x01\x41\xf1", 15)) != std::string::npos);

    auto unknown = get("/announce?info_hash=" + std::string(20, 'a') +
                       "&peer_id=-PS0001-abcdefghijkl&port=6881");
    REQUIRE(unknown);
    CHECK(unknown->body == "d14:failure reason15:unknown torrente");
}

TEST_CASE("reports are stored once per counter and show in the status", "[net]") {
    Seeder s("127.21.0.4");
    REQUIRE(s.publish("KB1", "x").exit_code == 0);
    s.start();
    std::array<std::uint8_t, 32> seed{};
    seed.fill(7);
    const auto key = crypto::keypair_from_seed(seed);
    auto post = [&](const std::string& body) {
        io::http::ClientRequest req;
        req.method = "POST";
        req.url = base_url() + "/v1/report";
        req.body = body;
        auto r = io::http::request_sync(std::move(req));
        REQUIRE(r);
        return r->status;
    };
    CHECK(post(report_body(key, 1)) == 200);
    CHECK(post(report_body(key, 1)) == 409);
    CHECK(post("{\"payload_type\":1}") == 400);
    CHECK(post(std::string(70 * 1024, ' ')) == 413);

    auto status = get("/v1/status");
    REQUIRE(status);
    const json doc = json::parse(status->body);
    CHECK(doc["endpoints"] == 1);
    CHECK(doc["releases"][0]["counts"]["downloading"] == 1);
    CHECK(doc["releases"][0]["not_effective"][0]["hostname"] == "desk-9");

    // The CLI reads the same database while serve runs.
    auto cli =
        run({PATCHSWARM_SEEDER_BIN, "status", "--repo", (s.dir / "repo").string(), "--json"});
    REQUIRE(cli.exit_code == 0);
    CHECK(json::parse(cli.output)["releases"][0]["counts"]["downloading"] == 1);
}

TEST_CASE("the fleet view needs the admin credential, the endpoints' routes do not", "[net]") {
    Seeder s("127.21.0.6");
    REQUIRE(s.publish("KB1", "0123456789").exit_code == 0);
    s.start({"--admin-auth", "always"});
    const std::string token = read_text(s.dir / "repo/keys/admin.token");
    REQUIRE(token.size() == 65);  // 64 hex digits and a newline
    const std::string bearer = "Bearer " + token.substr(0, 64);

    for (const std::string target : {"/", "/dashboard", "/v1/status", "/metrics"}) {
        INFO(target);
        auto refused = get(target);
        REQUIRE(refused);
        CHECK(refused->status == 401);
        CHECK(refused->headers["www-authenticate"].starts_with("Basic realm="));
        CHECK(refused->body.find("patchswarm_") == std::string::npos);
        auto wrong = get(target, 10s, "Bearer " + std::string(64, '0'));
        REQUIRE(wrong);
        CHECK(wrong->status == 401);
        auto ok = get(target, 10s, bearer);
        REQUIRE(ok);
        CHECK(ok->status == 200);
    }
    // The browser's way: HTTP Basic with the token as password.
    auto basic =
        get("/v1/status", 10s,
            "Basic " + crypto::to_base64(crypto::as_bytes("admin:" + token.substr(0, 64))));
    REQUIRE(basic);
    CHECK(basic->status == 200);
    CHECK(json::parse(basic->body)["releases"].size() == 1);
    // Endpoints need none of it.
    for (const std::string target : {"/healthz", "/v1/feed", "/v1/root/1.json",
                                     "/v1/releases/KB1/manifest", "/v1/releases/KB1/torrent"}) {
        INFO(target);
        auto r = get(target);
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    auto metrics = get("/metrics", 10s, bearer);
    REQUIRE(metrics);
    CHECK(metrics->body.find("patchswarm_http_refused_total{reason=\"unauthorized\"} 8") !=
          std::string::npos);
}

TEST_CASE("a client over its request rate gets 429 with Retry-After, others are served", "[net]") {
    Seeder s("127.21.0.7");
    s.start({"--rate-limit", "0.5", "--rate-burst", "5", "--max-connections-per-client", "2"});
    // start() polled /healthz until it answered: count what is left of the burst from here.
    int ok = 0, limited = 0;
    std::string retry_after;
    for (int i = 0; i < 12; ++i) {
        auto r = get("/healthz");
        REQUIRE(r);
        if (r->status == 200) ++ok;
        if (r->status == 429) {
            ++limited;
            retry_after = r->headers["retry-after"];
            CHECK(json::parse(r->body)["error"] == "rate_limited");
        }
    }
    CHECK(ok <= 5);
    CHECK(limited >= 7);
    CHECK(ok + limited == 12);
    CHECK((retry_after == "1" || retry_after == "2"));

    // Another client (another loopback address) still gets its own burst.
    io::http::ClientRequest other;
    other.url = base_url() + "/healthz";
    other.local_address = "127.21.0.8";
    auto r = io::http::request_sync(std::move(other));
    REQUIRE(r);
    CHECK(r->status == 200);

    // Connections per client: two held open (idle), the third is closed without an answer.
    namespace net = boost::asio;
    net::io_context io;
    const net::ip::tcp::endpoint server(net::ip::make_address(g_host), 18080);
    const net::ip::tcp::endpoint client(net::ip::make_address("127.21.0.9"), 0);
    std::vector<net::ip::tcp::socket> held;
    for (int i = 0; i < 3; ++i) {
        net::ip::tcp::socket sock(io);
        sock.open(net::ip::tcp::v4());
        sock.bind(client);
        sock.connect(server);
        held.push_back(std::move(sock));
    }
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    boost::system::error_code ec;
    net::write(held[2], net::buffer(request), ec);
    std::string answer(256, '\0');
    const std::size_t n = held[2].read_some(net::buffer(answer), ec);  // closed: EOF or reset
    CHECK(n == 0);
    CHECK(ec);
    // Closing one of the two makes room again.
    held[0].close();
    CHECK(wait_until(
        [&] {
            io::http::ClientRequest again;
            again.url = base_url() + "/healthz";
            again.local_address = "127.21.0.9";
            auto res = io::http::request_sync(std::move(again));
            return res && res->status == 200;
        },
        10s));
}
