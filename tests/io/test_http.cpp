// Beast server and client on loopback: round trips, limits, long-polls, timeouts, file ranges,
// keep-alive, local address binding. Every server listens on 127.0.0.1 port 0, and every wait is
// on a condition with a deadline.
#include <sys/stat.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "io/http/http.hpp"
#include "support/process.hpp"

namespace http = patchswarm::io::http;
namespace net = boost::asio;
namespace fs = std::filesystem;
using patchswarm::Errc;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kDeadline = 10s;

// The routes every test server answers; runs on the server's io_context thread.
struct Routes {
    net::io_context* io = nullptr;
    fs::path file;
    std::vector<http::Respond> held;  // "/hold" requests nobody answers (until a test does)

    void handle(http::Request&& req, http::Respond respond) {
        if (req.path.starts_with("/echo")) {
            nlohmann::json query = nlohmann::json::object();
            for (const auto& [k, v] : req.query) query[k] = v;
            nlohmann::json headers = nlohmann::json::object();
            for (const auto& [k, v] : req.headers) headers[k] = v;
            const nlohmann::json echo = {{"method", req.method}, {"path", req.path},
                                         {"target", req.target}, {"raw_query", req.raw_query},
                                         {"query", query},       {"headers", headers},
                                         {"body", req.body},     {"remote", req.remote_address}};
            respond(http::json_response(200, echo.dump()));
        } else if (req.path == "/missing") {
            respond(http::json_response(404, R"({"error":"not_found","message":"no such thing"})"));
        } else if (req.path == "/later") {
            auto timer = std::make_shared<net::steady_timer>(*io, 200ms);
            timer->async_wait([timer, respond](boost::system::error_code) {
                respond(http::text_response(200, "late"));
            });
        } else if (req.path == "/hold") {
            held.push_back(std::move(respond));
        } else if (req.path == "/big") {
            respond(http::text_response(200, std::string(10'000, 'x')));
        } else if (req.path == "/twice") {
            respond(http::text_response(200, "first"));
            respond(http::text_response(500, "second"));
        } else if (req.path == "/throw") {
            throw std::runtime_error("handler bug");
        } else if (req.path == "/file") {
            const auto range = req.headers.find("range");
            respond(
                http::file_response(file, range == req.headers.end() ? nullptr : &range->second));
        } else {
            respond(http::json_response(404, R"({"error":"not_found","message":""})"));
        }
    }
};

// A Server on its own io_context and thread; the test thread talks to it over loopback.
class ServerThread {
  public:
    explicit ServerThread(http::ServerLimits limits = {}, fs::path file = {})
        : server_(
              io_,
              [this](http::Request&& req, http::Respond respond) {
                  routes_.handle(std::move(req), std::move(respond));
              },
              limits) {
        routes_.io = &io_;
        routes_.file = std::move(file);
        auto port = server_.listen("127.0.0.1:0");
        REQUIRE(port);
        port_ = *port;
        thread_ = std::thread([this] { io_.run(); });
    }

    ~ServerThread() {
        io_.stop();
        thread_.join();
    }

    std::uint16_t port() const { return port_; }
    std::string url(const std::string& target) const {
        return "http://127.0.0.1:" + std::to_string(port_) + target;
    }

    // Runs `fn` on the server thread and waits for it, so tests can touch Routes safely.
    template <class Fn>
    auto on_io(Fn fn) {
        // Shared, so a task still queued when the wait below gives up stays valid.
        auto task = std::make_shared<std::packaged_task<decltype(fn(routes_))()>>(
            [this, fn = std::move(fn)]() mutable { return fn(routes_); });
        auto future = task->get_future();
        net::post(io_, [task] { (*task)(); });
        REQUIRE(future.wait_for(kDeadline) == std::future_status::ready);
        return future.get();
    }

  private:
    net::io_context io_;
    net::executor_work_guard<net::io_context::executor_type> guard_{io_.get_executor()};
    Routes routes_;
    http::Server server_;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

http::ClientRequest get(std::string url) {
    http::ClientRequest req;
    req.url = std::move(url);
    req.timeout = 5s;
    return req;
}

// Drives `io` until `done()` or the deadline; false on the deadline.
template <class Pred>
bool run_until(net::io_context& io, Pred done, Clock::duration timeout = kDeadline) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        if (io.stopped()) io.restart();
        io.run_one_until(deadline);
    }
    return true;
}

struct RawResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // lowercased names
    std::string body;
};

// A bare TCP connection, for what the client cannot show: keep-alive, half-sent requests, Range.
class RawClient {
  public:
    explicit RawClient(std::uint16_t port) : socket_(io_) {
        socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    }

    void send(const std::string& data) { net::write(socket_, net::buffer(data)); }

    // One response; the body is read by Content-Length unless `head`.
    std::optional<RawResponse> read_response(bool head = false) {
        bool done = false;
        boost::system::error_code error;
        std::size_t header_bytes = 0;
        net::async_read_until(socket_, net::dynamic_buffer(buffer_), "\r\n\r\n",
                              [&](boost::system::error_code ec, std::size_t n) {
                                  error = ec;
                                  header_bytes = n;
                                  done = true;
                              });
        if (!finish(done) || error) return std::nullopt;

        RawResponse res;
        const std::string header = buffer_.substr(0, header_bytes);
        res.status = std::stoi(header.substr(9, 3));
        std::size_t line = header.find("\r\n") + 2;
        while (line < header.size()) {
            const auto end = header.find("\r\n", line);
            if (end == line) break;
            const auto colon = header.find(':', line);
            std::string name = header.substr(line, colon - line);
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = header.substr(colon + 1, end - colon - 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            res.headers[name] = value;
            line = end + 2;
        }
        std::size_t length = 0;
        if (!head && res.headers.contains("content-length"))
            length = std::stoul(res.headers["content-length"]);
        if (buffer_.size() < header_bytes + length) {
            done = false;
            net::async_read(socket_, net::dynamic_buffer(buffer_),
                            net::transfer_exactly(header_bytes + length - buffer_.size()),
                            [&](boost::system::error_code ec, std::size_t) {
                                error = ec;
                                done = true;
                            });
            if (!finish(done) || error) return std::nullopt;
        }
        res.body = buffer_.substr(header_bytes, length);
        buffer_.erase(0, header_bytes + length);
        return res;
    }

    // Waits until the server closes the connection; the error that reported it (eof), or
    // nullopt when the deadline passed first.
    std::optional<boost::system::error_code> wait_closed(Clock::duration timeout = kDeadline) {
        std::array<char, 4096> scratch{};
        std::optional<boost::system::error_code> closed;
        std::function<void()> read_more = [&] {
            socket_.async_read_some(net::buffer(scratch),
                                    [&](boost::system::error_code ec, std::size_t) {
                                        if (ec) {
                                            closed = ec;
                                        } else {
                                            read_more();
                                        }
                                    });
        };
        read_more();
        bool ended = run_until(
            io_, [&] { return closed.has_value(); }, timeout);
        if (!ended) abandon();
        return closed;
    }

    void close() {
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

  private:
    bool finish(bool& done) {
        if (run_until(io_, [&] { return done; })) return true;
        abandon();
        return false;
    }

    // Runs the cancelled handlers now, while what they capture is still alive.
    void abandon() {
        close();
        io_.restart();
        io_.run();
    }

    net::io_context io_;
    tcp::socket socket_;
    std::string buffer_;
};

std::string get_request(const std::string& target, const std::string& extra_headers = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

using patchswarm::test::TempDir;  // a scratch folder removed at the end of the test

std::string hundred_bytes() {
    std::string content;
    for (int i = 0; i < 100; ++i) content.push_back(static_cast<char>('a' + i % 26));
    return content;
}

fs::path write_file(const fs::path& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

}  // namespace

TEST_CASE("a GET and a POST round-trip with their bodies", "[net]") {
    ServerThread server;
    const auto got = http::request_sync(get(server.url("/echo")));
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->headers.at("content-type") == "application/json");
    const auto echo = nlohmann::json::parse(got->body);
    CHECK(echo["method"] == "GET");
    CHECK(echo["path"] == "/echo");
    CHECK(echo["headers"]["user-agent"] == "patchswarm/0.1");
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

TEST_CASE("url_encode and url_decode are inverse and keep unreserved characters", "[net]") {
    CHECK(http::url_encode("AZaz09-._~") == "AZaz09-._~");
    CHECK(http::url_encode("a b/c?d=e&f+\x01\xff") == "a%20b%2Fc%3Fd%3De%26f%2B%01%FF");
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    CHECK(http::url_decode(http::url_encode(all)) == all);
    CHECK(http::url_decode("%41%zz%4") == "A%zz%4");
    CHECK(http::url_decode("a+b") == "a+b");
}

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
