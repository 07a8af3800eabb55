// Test support: an HTTP "seeder" run by the test on loopback, serving whatever documents the test
// put in `routes_` (404 otherwise), to play a hostile or replaying server against the real
// patchswarmd.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "io/http/server.hpp"

namespace patchswarm::test {

// A seeder that serves whatever documents the test put in `routes`.
class FakeSeeder {
  public:
    explicit FakeSeeder(const std::string& address) {
        server_ = std::make_unique<io::http::Server>(io_, [this](io::http::Request&& req,
                                                                 io::http::Respond respond) {
            auto it = routes_.find(req.path);
            respond(it == routes_.end() ? io::http::json_response(404, R"({"error":"not_found"})")
                                        : io::http::json_response(200, it->second));
        });
        auto port = server_->listen(address);
        REQUIRE(port.has_value());
        url_ = "http://" + address;
    }
    ~FakeSeeder() {
        io_.stop();
        if (thread_.joinable()) thread_.join();
    }
    void start() {
        thread_ = std::thread([this] { io_.run(); });
    }
    std::map<std::string, std::string> routes_;  // set before start(); after it, set_route()
    // Replaces one document while the server runs (on its thread, so no request sees half of it).
    void set_route(const std::string& path, std::string body) {
        std::promise<void> done;
        boost::asio::post(io_, [&] {
            routes_[path] = std::move(body);
            done.set_value();
        });
        done.get_future().wait();
    }
    const std::string& url() const { return url_; }

  private:
    boost::asio::io_context io_;
    std::unique_ptr<io::http::Server> server_;
    std::thread thread_;
    std::string url_;
};

}  // namespace patchswarm::test
