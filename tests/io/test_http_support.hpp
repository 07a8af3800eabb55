// Shared by test_http_server.cpp and test_http_client.cpp: a Server on its own thread with a
// fixed set of routes, a bare TCP client for what the HTTP client cannot show, and small helpers.
// Every server listens on 127.0.0.1 port 0, and every wait is on a condition with a deadline.
#pragma once

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

#include "io/http/client.hpp"
#include "io/http/server.hpp"
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
