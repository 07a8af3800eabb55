// The HTTP/1.1 client on Boost.Beast (plain http:// only), behind small project types so that
// only client.cpp includes Beast. One exchange per connection, with one deadline from connect to
// the last byte.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>

#include "base/error.hpp"
#include "io/http/parse.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::io::http {

struct ClientRequest {
    std::string method = "GET";
    std::string url;  // http://host:port/path?query  (plain HTTP)
    std::string body;
    std::string content_type = "application/json";
    std::chrono::milliseconds timeout{10'000};   // whole exchange, connect to last byte
    std::size_t max_response_bytes = 1 << 20;    // Errc::too_large beyond this
    std::string local_address;                   // bind the socket here first (optional)
    std::map<std::string, std::string> headers;  // extra request headers, e.g. Authorization
};

struct ClientResponse {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lowercased names
};

// Async: `done` runs on the io_context thread with the response (any status) or
// Errc::network / Errc::too_large / Errc::invalid_argument (bad URL). May be called from any
// thread; the io_context must be run by one.
void request(boost::asio::io_context& io, ClientRequest req,
             std::function<void(Result<ClientResponse>)> done);

// Blocking convenience for CLIs and tests: runs its own io_context.
[[nodiscard]] Result<ClientResponse> request_sync(ClientRequest req);

}  // namespace patchswarm::io::http
