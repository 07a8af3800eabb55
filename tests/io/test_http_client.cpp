// The Beast client against the server on loopback: round trips, decoding seen by a handler,
// long-polls, response limits, local address binding, URL refusals, and stop() under a client.
// Helpers in test_http_support.hpp.
#include "base/version.hpp"
#include "test_http_support.hpp"

TEST_CASE("a GET and a POST round-trip with their bodies", "[net]") {
    ServerThread server;
    const auto got = http::request_sync(get(server.url("/echo")));
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->headers.at("content-type") == "application/json");
    const auto echo = nlohmann::json::parse(got->body);
    CHECK(echo["method"] == "GET");
    CHECK(echo["path"] == "/echo");
    CHECK(echo["headers"]["user-agent"] == std::string(patchswarm::kUserAgent));
    CHECK(echo["headers"]["host"] == "127.0.0.1:" + std::to_string(server.port()));

    std::string body;
    for (int i = 0; i < 200'000; ++i) body.push_back(static_cast<char>('A' + i % 26));
    auto post = get(server.url("/echo"));
    post.method = "POST";
    post.body = body;
    post.content_type = "application/x-test";
    const auto posted = http::request_sync(post);
    REQUIRE(posted);
    CHECK(posted->status == 200);
    const auto posted_echo = nlohmann::json::parse(posted->body);
    CHECK(posted_echo["method"] == "POST");
    CHECK(posted_echo["body"] == body);
    CHECK(posted_echo["headers"]["content-type"] == "application/x-test");
}

TEST_CASE("the path and query are percent-decoded, the raw query kept", "[net]") {
    ServerThread server;
    const auto got = http::request_sync(
        get(server.url("/echo/a%20b?x=1&name=hello%20world&plus=a+b&x=2&flag&enc=%2F%3D")));
    REQUIRE(got);
    REQUIRE(got->status == 200);
    const auto echo = nlohmann::json::parse(got->body);
    CHECK(echo["path"] == "/echo/a b");
    CHECK(echo["raw_query"] == "x=1&name=hello%20world&plus=a+b&x=2&flag&enc=%2F%3D");
    CHECK(echo["query"]["x"] == "2");
    CHECK(echo["query"]["name"] == "hello world");
    CHECK(echo["query"]["plus"] == "a b");
    CHECK(echo["query"]["flag"] == "");
    CHECK(echo["query"]["enc"] == "/=");
}

TEST_CASE("a long-poll answered 200 ms later reaches the client", "[net]") {
    ServerThread server;
    const auto start = Clock::now();
    const auto got = http::request_sync(get(server.url("/later")));
    const auto elapsed = Clock::now() - start;
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->body == "late");
    CHECK(elapsed >= 190ms);
}

TEST_CASE("a client that gives up on a long-poll gets Errc::network and the server carries on",
          "[net]") {
    ServerThread server;
    auto req = get(server.url("/hold"));
    req.timeout = 300ms;
    const auto start = Clock::now();
    const auto got = http::request_sync(req);
    const auto elapsed = Clock::now() - start;
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::network);
    CHECK_THAT(got.error().message, Catch::Contains("timed out") && Catch::Contains(req.url));
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 3s);

    // Answering after the client left must be harmless, and so must answering twice.
    const auto answered = server.on_io([](Routes& routes) {
        for (auto& respond : routes.held) {
            respond(http::text_response(200, "too late"));
            respond(http::text_response(200, "too late again"));
        }
        const auto n = routes.held.size();
        routes.held.clear();
        return n;
    });
    CHECK(answered == 1);

    const auto next = http::request_sync(get(server.url("/echo")));
    REQUIRE(next);
    CHECK(next->status == 200);
}

TEST_CASE("a response over max_response_bytes is Errc::too_large", "[net]") {
    ServerThread server;
    auto req = get(server.url("/big"));
    req.max_response_bytes = 1000;
    const auto got = http::request_sync(req);
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::too_large);

    req.max_response_bytes = 10'000;
    const auto fits = http::request_sync(req);
    REQUIRE(fits);
    CHECK(fits->body.size() == 10'000);
}

TEST_CASE("the client binds local_address, and the server reports it as remote_address", "[net]") {
    ServerThread server;
    const auto plain = http::request_sync(get(server.url("/echo")));
    REQUIRE(plain);
    CHECK(nlohmann::json::parse(plain->body)["remote"] == "127.0.0.1");

    auto req = get(server.url("/echo"));
    req.local_address = "127.0.0.5";
    const auto bound = http::request_sync(req);
    REQUIRE(bound);
    CHECK(nlohmann::json::parse(bound->body)["remote"] == "127.0.0.5");

    req.local_address = "not-an-address";
    const auto bad = http::request_sync(req);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == Errc::invalid_argument);
}

TEST_CASE("the client rejects URLs it cannot fetch and names what failed", "[net]") {
    for (const auto* url :
         {"https://127.0.0.1/", "ftp://127.0.0.1/", "http://", "http://:80/",
          "http://127.0.0.1:99999/", "http://127.0.0.1:0/", "http://user@127.0.0.1/",
          "http://127.0.0.1/a b", "127.0.0.1/x", "http://[::1/"}) {
        INFO(url);
        const auto got = http::request_sync(get(url));
        REQUIRE_FALSE(got);
        CHECK(got.error().code == Errc::invalid_argument);
    }
    auto bad_method = get("http://127.0.0.1/");
    bad_method.method = "GET /x";
    CHECK(http::request_sync(bad_method).error().code == Errc::invalid_argument);

    // A port nobody listens on: take a free one and release it.
    std::uint16_t port = 0;
    {
        net::io_context io;
        tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
        port = acceptor.local_endpoint().port();
    }
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/x?y=1";
    const auto refused = http::request_sync(get(url));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::network);
    CHECK_THAT(refused.error().message, Catch::Contains("connect") && Catch::Contains(url));
}

TEST_CASE("stop() closes listeners and connections so run() returns, and a late answer is safe",
          "[net]") {
    net::io_context io;
    std::vector<http::Respond> held;
    http::Server* server_ptr = nullptr;
    http::Server server(io, [&](http::Request&&, http::Respond respond) {
        held.push_back(std::move(respond));
        net::post(io, [&] { server_ptr->stop(); });
    });
    server_ptr = &server;
    const auto port = server.listen("127.0.0.1:0");
    REQUIRE(port);

    std::optional<patchswarm::Result<http::ClientResponse>> result;
    auto req = get("http://127.0.0.1:" + std::to_string(*port) + "/hold");
    http::request(io, req,
                  [&](patchswarm::Result<http::ClientResponse> r) { result = std::move(r); });
    const auto start = Clock::now();
    io.run_for(kDeadline);
    CHECK(Clock::now() - start < 4s);  // ran out of work: nothing of the server is left pending
    REQUIRE(result.has_value());
    REQUIRE_FALSE(result->has_value());
    CHECK(result->error().code == Errc::network);

    REQUIRE(held.size() == 1);
    held.front()(http::text_response(200, "after stop"));
    io.restart();
    io.run_for(kDeadline);
    held.clear();

    const auto again = http::request_sync(get("http://127.0.0.1:" + std::to_string(*port) + "/"));
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::network);
}
