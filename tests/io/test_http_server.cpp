// The Beast server on loopback: handler answers, limits (413, 431, 503, connections), HEAD,
// file ranges, keep-alive and its timeouts, binding. Helpers in test_http_support.hpp.
#include "test_http_support.hpp"

TEST_CASE("a handler's 404, a request twice answered and a throwing handler", "[net]") {
    ServerThread server;
    const auto missing = http::request_sync(get(server.url("/missing")));
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(nlohmann::json::parse(missing->body)["error"] == "not_found");

    const auto twice = http::request_sync(get(server.url("/twice")));
    REQUIRE(twice);
    CHECK(twice->status == 200);
    CHECK(twice->body == "first");

    const auto thrown = http::request_sync(get(server.url("/throw")));
    REQUIRE(thrown);
    CHECK(thrown->status == 500);

    const auto after = http::request_sync(get(server.url("/echo")));
    REQUIRE(after);
    CHECK(after->status == 200);
}

TEST_CASE("a path that decodes to a NUL byte is refused with 400", "[net]") {
    ServerThread server;
    const auto got = http::request_sync(get(server.url("/echo%00x")));
    REQUIRE(got);
    CHECK(got->status == 400);
}

TEST_CASE("a body over max_body_bytes gets 413 and the server carries on", "[net]") {
    http::ServerLimits limits;
    limits.max_body_bytes = 1024;
    ServerThread server(limits);
    auto post = get(server.url("/echo"));
    post.method = "POST";
    post.body = std::string(64 * 1024, 'x');
    const auto got = http::request_sync(post);
    REQUIRE(got);
    CHECK(got->status == 413);
    CHECK(nlohmann::json::parse(got->body)["error"] == "payload_too_large");

    post.body = std::string(1024, 'y');
    const auto fits = http::request_sync(post);
    REQUIRE(fits);
    CHECK(fits->status == 200);
}

TEST_CASE("a header over max_header_bytes gets 431 and the connection closes", "[net]") {
    http::ServerLimits limits;
    limits.max_header_bytes = 1024;
    ServerThread server(limits);
    RawClient raw(server.port());
    raw.send(get_request("/echo", "X-Big: " + std::string(20'000, 'a') + "\r\n"));
    const auto res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 431);
    CHECK(raw.wait_closed().has_value());
}

TEST_CASE("a request with Expect: 100-continue gets 100 before sending its body", "[net]") {
    ServerThread server;
    RawClient raw(server.port());
    raw.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    const auto go_on = raw.read_response();
    REQUIRE(go_on);
    CHECK(go_on->status == 100);
    raw.send("hello");
    const auto res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(nlohmann::json::parse(res->body)["body"] == "hello");
}
TEST_CASE("a request nobody answers gets 503 after handler_timeout", "[net]") {
    http::ServerLimits limits;
    limits.handler_timeout = 1s;
    ServerThread server(limits);
    RawClient raw(server.port());
    raw.send(get_request("/hold"));
    const auto res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 503);
    // The late answer is dropped; the same connection serves the next request.
    server.on_io([](Routes& routes) {
        for (auto& respond : routes.held) respond(http::text_response(200, "late"));
        routes.held.clear();
        return 0;
    });
    raw.send(get_request("/echo"));
    const auto next = raw.read_response();
    REQUIRE(next);
    CHECK(next->status == 200);
}
TEST_CASE("HEAD gets the headers of GET without the body", "[net]") {
    ServerThread server;
    auto req = get(server.url("/big"));
    req.method = "HEAD";
    const auto got = http::request_sync(req);
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->body.empty());
    CHECK(got->headers.at("content-length") == "10000");
}

TEST_CASE("file ranges are served exactly on one keep-alive connection", "[net]") {
    TempDir dir("ps-http");
    const std::string content = hundred_bytes();
    ServerThread server({}, write_file(dir.path() / "payload.bin", content));
    RawClient raw(server.port());

    raw.send(get_request("/file", "Range: bytes=10-19\r\n"));
    auto res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 206);
    CHECK(res->body == content.substr(10, 10));
    CHECK(res->headers["content-range"] == "bytes 10-19/100");
    CHECK(res->headers["accept-ranges"] == "bytes");

    raw.send(get_request("/file", "Range: bytes=-5\r\n"));
    res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 206);
    CHECK(res->body == content.substr(95));
    CHECK(res->headers["content-range"] == "bytes 95-99/100");

    raw.send(get_request("/file", "Range: bytes=100000-\r\n"));
    res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 416);
    CHECK(res->headers["content-range"] == "bytes */100");

    raw.send(get_request("/file"));
    res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == content);
    CHECK(res->headers["content-length"] == "100");

    raw.send("HEAD /file HTTP/1.1\r\nHost: x\r\nRange: bytes=90-\r\n\r\n");
    res = raw.read_response(true);
    REQUIRE(res);
    CHECK(res->status == 206);
    CHECK(res->headers["content-length"] == "10");

    // The HEAD response had no body: the next response starts right after its header.
    raw.send(get_request("/file", "Range: bytes=0-0\r\n"));
    res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 206);
    CHECK(res->body == "a");
}

TEST_CASE("a large file is streamed whole and by range", "[net]") {
    TempDir dir("ps-http");
    std::string content(3 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < content.size(); ++i)
        content[i] = static_cast<char>((i * 7919) >> 3);
    ServerThread server({}, write_file(dir.path() / "large.bin", content));
    auto req = get(server.url("/file"));
    req.max_response_bytes = content.size();
    const auto got = http::request_sync(req);
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->body == content);

    RawClient raw(server.port());
    raw.send(get_request("/file", "Range: bytes=65530-200000\r\n"));
    const auto res = raw.read_response();
    REQUIRE(res);
    CHECK(res->status == 206);
    CHECK(res->body == content.substr(65530, 200000 - 65530 + 1));
}

TEST_CASE("file_response refuses what is not a regular file and parses ranges", "[net]") {
    TempDir dir("ps-http");
    const auto file = write_file(dir.path() / "f.bin", hundred_bytes());
    const auto empty = write_file(dir.path() / "empty.bin", "");
    fs::create_directory(dir.path() / "folder");
    fs::create_symlink(file, dir.path() / "link");
    REQUIRE(::mkfifo((dir.path() / "fifo").c_str(), 0600) == 0);

    for (const auto* name : {"missing", "folder", "link", "fifo"}) {
        INFO(name);
        CHECK(http::file_response(dir.path() / name, nullptr).status == 404);
    }

    struct Case {
        std::string range;
        int status;
        std::uint64_t offset;
        std::uint64_t length;
    };
    const std::vector<Case> cases = {
        {"bytes=10-19", 206, 10, 10},   {"bytes=10-", 206, 10, 90},
        {"bytes=-5", 206, 95, 5},       {"bytes=-500", 206, 0, 100},
        {"bytes=90-1000", 206, 90, 10}, {"bytes=99-99", 206, 99, 1},
        {"BYTES = 1-2", 200, 0, 100},   {"bytes=1-2,5-6", 200, 0, 100},
        {"bytes=5-2", 200, 0, 100},     {"items=1-2", 200, 0, 100},
        {"bytes=x-2", 200, 0, 100},     {"bytes=100-", 416, 0, 0},
        {"bytes=-0", 416, 0, 0},        {"bytes=99999999999999999999999-", 416, 0, 0},
        {" bytes= 3 - 4 ", 206, 3, 2},
    };
    for (const auto& c : cases) {
        INFO(c.range);
        const auto res = http::file_response(file, &c.range, "text/plain");
        CHECK(res.status == c.status);
        if (c.status == 416) {
            CHECK(res.headers.at("Content-Range") == "bytes */100");
            CHECK_FALSE(res.file);
        } else {
            REQUIRE(res.file);
            CHECK(res.file->offset == c.offset);
            CHECK(res.file->length == c.length);
            CHECK(res.content_type == "text/plain");
        }
    }
    const std::string from_zero = "bytes=0-";
    CHECK(http::file_response(empty, &from_zero).status == 416);
    const auto whole_empty = http::file_response(empty, nullptr);
    CHECK(whole_empty.status == 200);
    REQUIRE(whole_empty.file);
    CHECK(whole_empty.file->length == 0);
}

TEST_CASE("two requests share one keep-alive connection, Connection: close ends it", "[net]") {
    ServerThread server;
    RawClient raw(server.port());
    raw.send(get_request("/echo?n=1"));
    const auto first = raw.read_response();
    REQUIRE(first);
    CHECK(first->status == 200);
    CHECK(nlohmann::json::parse(first->body)["query"]["n"] == "1");

    raw.send(get_request("/echo?n=2", "Connection: close\r\n"));
    const auto second = raw.read_response();
    REQUIRE(second);
    CHECK(second->status == 200);
    CHECK(nlohmann::json::parse(second->body)["query"]["n"] == "2");
    CHECK(second->headers.at("connection") == "close");
    const auto closed = raw.wait_closed();
    REQUIRE(closed);
    CHECK(*closed == net::error::eof);
}

TEST_CASE("a client that sends half a header is disconnected after read_timeout", "[net]") {
    http::ServerLimits limits;
    limits.read_timeout = 1s;
    ServerThread server(limits);
    RawClient raw(server.port());
    const auto start = Clock::now();
    raw.send("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const auto closed = raw.wait_closed(5s);
    const auto elapsed = Clock::now() - start;
    REQUIRE(closed);
    CHECK(*closed == net::error::eof);
    CHECK(elapsed >= 900ms);
    CHECK(elapsed < 5s);
}

TEST_CASE("an idle keep-alive connection is closed after idle_timeout", "[net]") {
    http::ServerLimits limits;
    limits.idle_timeout = 1s;
    ServerThread server(limits);
    RawClient raw(server.port());
    raw.send(get_request("/echo"));
    REQUIRE(raw.read_response());
    const auto start = Clock::now();
    const auto closed = raw.wait_closed(5s);
    REQUIRE(closed);
    CHECK(*closed == net::error::eof);
    CHECK(Clock::now() - start >= 900ms);
}

TEST_CASE("connections beyond max_connections are refused until one closes", "[net]") {
    http::ServerLimits limits;
    limits.max_connections = 1;
    ServerThread server(limits);
    RawClient first(server.port());
    first.send(get_request("/echo"));
    REQUIRE(first.read_response());  // the first connection is now a live session

    const auto refused = http::request_sync(get(server.url("/echo")));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::network);

    first.close();
    // The server notices the close on its own schedule; retry until it has, with a deadline.
    const auto deadline = Clock::now() + kDeadline;
    patchswarm::Result<http::ClientResponse> later = http::request_sync(get(server.url("/echo")));
    while (!later && Clock::now() < deadline) later = http::request_sync(get(server.url("/echo")));
    REQUIRE(later);
    CHECK(later->status == 200);
}

TEST_CASE("a client that leaves while its request is held frees its connection at once", "[net]") {
    http::ServerLimits limits;
    limits.max_connections = 1;
    ServerThread server(limits);
    {
        RawClient holder(server.port());
        holder.send(get_request("/hold"));
        REQUIRE(patchswarm::test::wait_until(
            [&] { return server.on_io([](Routes& r) { return r.held.size(); }) == 1; }, 10s));
        CHECK_FALSE(http::request_sync(get(server.url("/echo"))));  // the one slot is taken
        holder.close();
    }
    // No answer was ever given to the held request, yet the slot comes free.
    const auto deadline = Clock::now() + kDeadline;
    patchswarm::Result<http::ClientResponse> later = http::request_sync(get(server.url("/echo")));
    while (!later && Clock::now() < deadline) later = http::request_sync(get(server.url("/echo")));
    REQUIRE(later);
    CHECK(later->status == 200);
    // The late answer for the departed client is a no-op.
    server.on_io([](Routes& routes) {
        for (auto& respond : routes.held) respond(http::text_response(200, "late"));
        routes.held.clear();
        return 0;
    });
}

TEST_CASE("a request pipelined behind a held one is answered after it", "[net]") {
    ServerThread server;
    RawClient raw(server.port());
    raw.send(get_request("/hold"));
    REQUIRE(patchswarm::test::wait_until(
        [&] { return server.on_io([](Routes& r) { return r.held.size(); }) == 1; }, 10s));
    raw.send(get_request("/big"));  // read while the first is held
    server.on_io([](Routes& routes) {
        for (auto& respond : routes.held) respond(http::text_response(200, "held"));
        routes.held.clear();
        return 0;
    });
    const auto first = raw.read_response();
    REQUIRE(first);
    CHECK(first->body == "held");
    const auto second = raw.read_response();
    REQUIRE(second);
    CHECK(second->body.size() == 10'000);
}

TEST_CASE("binding a port in use is Errc::network and leaves the server usable", "[net]") {
    ServerThread busy;
    net::io_context io;
    http::Server server(
        io, [](http::Request&&, http::Respond respond) { respond(http::text_response(200, "")); });
    const std::string address = "127.0.0.1:" + std::to_string(busy.port());
    const auto clash = server.listen(address);
    REQUIRE_FALSE(clash);
    CHECK(clash.error().code == Errc::network);
    CHECK_THAT(clash.error().message, Catch::Contains(address));

    const auto malformed = server.listen("no-port-here");
    REQUIRE_FALSE(malformed);
    CHECK(malformed.error().code == Errc::invalid_argument);

    const auto port = server.listen("127.0.0.1:0");
    REQUIRE(port);
    CHECK(*port != 0);
}
