// The pure half of the HTTP adapter (io/http/parse.hpp): percent-coding, targets and queries,
// Range, Basic credentials, URLs, and whole requests through parse_request, which uses the
// server's parser and limits without a socket. No sockets, no files, no Beast in this file.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "crypto/crypto.hpp"
#include "io/http/parse.hpp"

namespace http = patchswarm::io::http;
using Kind = http::RequestParse::Kind;

TEST_CASE("url_encode and url_decode are inverse and keep unreserved characters", "[io]") {
    CHECK(http::url_encode("AZaz09-._~") == "AZaz09-._~");
    CHECK(http::url_encode("a b/c?d=e&f+\x01\xff") == "a%20b%2Fc%3Fd%3De%26f%2B%01%FF");
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    CHECK(http::url_decode(http::url_encode(all)) == all);
    CHECK(http::url_decode("%41%zz%4") == "A%zz%4");
    CHECK(http::url_decode("a+b") == "a+b");
}

TEST_CASE("a target splits into a decoded path, a form-decoded query and the raw query", "[io]") {
    http::Request req;
    REQUIRE(http::parse_target("/echo/a%20b?x=1&name=hello%20world&plus=a+b&x=2&flag&&enc=%2F%3D",
                               req));
    CHECK(req.path == "/echo/a b");
    CHECK(req.raw_query == "x=1&name=hello%20world&plus=a+b&x=2&flag&&enc=%2F%3D");
    CHECK(req.query ==
          std::map<std::string, std::string>{
              {"x", "2"}, {"name", "hello world"}, {"plus", "a b"}, {"flag", ""}, {"enc", "/="}});
    for (const char* bad : {"", "*", "http://host/x", "x/y", "/a%00b"}) {
        INFO(bad);
        http::Request other;
        CHECK_FALSE(http::parse_target(bad, other));
    }
}

TEST_CASE("Range headers: one byte range is honoured, anything else means the whole file", "[io]") {
    using K = http::ByteRange::Kind;
    struct Case {
        std::string header;
        std::uint64_t size;
        K kind;
        std::uint64_t first;
        std::uint64_t last;
    };
    const std::vector<Case> cases = {
        {"bytes=10-19", 100, K::partial, 10, 19},
        {"bytes=10-", 100, K::partial, 10, 99},
        {"bytes=-5", 100, K::partial, 95, 99},
        {"bytes=-500", 100, K::partial, 0, 99},
        {"bytes=90-1000", 100, K::partial, 90, 99},
        {" bytes= 3 - 4 ", 100, K::partial, 3, 4},
        {"BYTES=1-2", 100, K::partial, 1, 2},
        {"bytes=1-2,5-6", 100, K::whole, 0, 0},
        {"bytes=5-2", 100, K::whole, 0, 0},
        {"items=1-2", 100, K::whole, 0, 0},
        {"bytes=x-2", 100, K::whole, 0, 0},
        {"bytes=+1-2", 100, K::whole, 0, 0},
        {"bytes=", 100, K::whole, 0, 0},
        {"bytes=100-", 100, K::unsatisfiable, 0, 0},
        {"bytes=-0", 100, K::unsatisfiable, 0, 0},
        {"bytes=0-", 0, K::unsatisfiable, 0, 0},
        {"bytes=99999999999999999999999-", 100, K::unsatisfiable, 0, 0},
        {"bytes=0-99999999999999999999999", 100, K::partial, 0, 99},
    };
    for (const auto& c : cases) {
        INFO(c.header << " of " << c.size);
        const auto range = http::parse_range(c.header, c.size);
        CHECK(range.kind == c.kind);
        if (c.kind == K::partial) {
            CHECK(range.first == c.first);
            CHECK(range.last == c.last);
        }
    }
}

TEST_CASE("Basic credentials decode user and password, anything else is none", "[io]") {
    const auto with = [](std::string value) {
        http::Request req;
        req.headers["authorization"] = std::move(value);
        return http::basic_credentials(req);
    };
    const auto encoded =
        patchswarm::crypto::to_base64(patchswarm::crypto::as_bytes("admin:s3:cret"));
    const auto creds = with("  bAsIc " + encoded + " ");
    REQUIRE(creds);
    CHECK(creds->first == "admin");
    CHECK(creds->second == "s3:cret");
    CHECK_FALSE(with("Bearer " + encoded));
    CHECK_FALSE(with("Basic"));
    CHECK_FALSE(with("Basic !!!"));
    CHECK_FALSE(
        with("Basic " + patchswarm::crypto::to_base64(patchswarm::crypto::as_bytes("nocolon"))));
    CHECK_FALSE(http::basic_credentials(http::Request{}));
}

TEST_CASE("URLs: http:// with host, port and target, and anything else is invalid_argument",
          "[io]") {
    const auto url = http::parse_url("HTTP://[::1]:8080/v1/feed?after=3#frag");
    REQUIRE(url);
    CHECK(url->host == "::1");
    CHECK(url->port == "8080");
    CHECK(url->target == "/v1/feed?after=3");
    CHECK(url->host_header == "[::1]:8080");
    const auto bare = http::parse_url("http://example.org?q");
    REQUIRE(bare);
    CHECK(bare->port == "80");
    CHECK(bare->target == "/?q");
    for (const char* bad :
         {"https://x/", "http://", "http://u@x/", "http://x:0/", "http://x:65536/", "http://x:/",
          "http://x /", "http://[::1/", "http://[::1]x/", "ftp://x/"}) {
        INFO(bad);
        const auto got = http::parse_url(bad);
        REQUIRE_FALSE(got);
        CHECK(got.error().code == patchswarm::Errc::invalid_argument);
    }
}

TEST_CASE("parse_request yields the Request a handler sees, or the server's refusal", "[io]") {
    SECTION("a GET with repeated headers, pipelined before a second request") {
        const std::string first =
            "GET /v1/feed?after=3 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        const auto got = http::parse_request(first + "GET / HTTP/1.1\r\n\r\n");
        REQUIRE(got.kind == Kind::request);
        CHECK(got.consumed == first.size());
        CHECK(got.keep_alive);
        CHECK(got.request->method == "GET");
        CHECK(got.request->path == "/v1/feed");
        CHECK(got.request->query.at("after") == "3");
        CHECK(got.request->headers.at("x-a") == "1, 2");
        CHECK(got.request->headers.at("host") == "x");
    }
    SECTION("a POST with a chunked body and Expect: 100-continue") {
        const auto got = http::parse_request(
            "POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n"
            "Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        REQUIRE(got.kind == Kind::request);
        CHECK(got.request->body == "abcde");
        CHECK(got.expects_continue);
        CHECK_FALSE(got.keep_alive);
    }
    SECTION("bytes that end inside the request are incomplete") {
        for (const char* part : {"", "GET / HTTP/1.1\r\nHost: x\r\n",
                                 "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"}) {
            INFO(part);
            CHECK(http::parse_request(part).kind == Kind::incomplete);
        }
    }
    SECTION("limits and malformed requests get 413, 431 and 400") {
        const http::MessageLimits limits{256, 10};
        struct Case {
            std::string bytes;
            int status;
        };
        const std::vector<Case> cases = {
            {"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 413},
            {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n",
             413},
            {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", 431},
            {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a'), 431},
            {"GET / HTTP/9.9\r\n\r\n", 400},
            {"GET /\r\n\r\n", 400},
            {"G@T / HTTP/1.1\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
            {"GET /a%00 HTTP/1.1\r\n\r\n", 400},
            {"GET * HTTP/1.1\r\n\r\n", 400},
        };
        for (const auto& c : cases) {
            INFO(c.bytes);
            const auto got = http::parse_request(c.bytes, limits);
            REQUIRE(got.kind == Kind::refused);
            CHECK(got.refusal->status == c.status);
            CHECK(got.refusal->content_type == "application/json");
        }
    }
}
