// HTTP/1.1 server and client on Boost.Beast, behind small project types so that only http.cpp
// includes Beast. Both run on the program's single io_context; every operation has a timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::http {

// ---- server ----------------------------------------------------------------------------------
struct Request {
    std::string method;  // "GET", "POST", ...
    std::string target;  // raw request target, e.g. "/v1/feed?after=3"
    std::string path;    // percent-decoded path part, e.g. "/v1/feed"
    std::map<std::string, std::string> query;  // percent-decoded; last value wins
    std::string raw_query;                     // undecoded query string (tracker needs raw bytes)
    std::map<std::string, std::string> headers;  // field names lowercased
    std::string body;
    std::string remote_address;  // peer IP as text
};

struct FileRange {
    std::filesystem::path path;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::map<std::string, std::string> headers;
    std::optional<FileRange> file;  // when set, the body is streamed from this file range
};

Response text_response(int status, std::string body);  // text/plain; charset=utf-8
Response json_response(int status, std::string body);

// Builds the answer for a GET of a file, honouring a single "Range: bytes=a-b" (206, or 416
// when unsatisfiable). 404 if the file does not exist or is not a regular file.
Response file_response(const std::filesystem::path& file, const std::string* range_header,
                       const std::string& content_type = "application/octet-stream");

// Called once per request; call `respond` exactly once, now or later (long-poll). Calls happen
// on the io_context thread.
using Respond = std::function<void(Response)>;
using Handler = std::function<void(Request&&, Respond)>;

struct ServerLimits {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1 << 20;
    std::chrono::seconds read_timeout{15};    // to read a full request
    std::chrono::seconds write_timeout{120};  // to write a response
    std::chrono::seconds idle_timeout{60};    // keep-alive between requests
    std::chrono::seconds handler_timeout{90};  // an unanswered request gets 503
    std::size_t max_connections = 4096;
};

class Server {
public:
    Server(boost::asio::io_context& io, Handler handler, ServerLimits limits = {});
    ~Server();
    // Binds and starts accepting. "127.0.0.1:8080"; port 0 picks a free port. Returns the bound
    // port. Errc::network when the address cannot be bound.
    [[nodiscard]] Result<std::uint16_t> listen(const std::string& host_port);
    void stop();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// ---- client ----------------------------------------------------------------------------------
struct ClientRequest {
    std::string method = "GET";
    std::string url;  // http://host:port/path?query  (plain HTTP)
    std::string body;
    std::string content_type = "application/json";
    std::chrono::milliseconds timeout{10'000};  // whole exchange, connect to last byte
    std::size_t max_response_bytes = 1 << 20;   // Errc::too_large beyond this
    std::string local_address;                  // bind the socket here first (optional)
};

struct ClientResponse {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lowercased names
};

// Async: `done` runs on the io_context thread with the response (any status) or
// Errc::network / Errc::too_large / Errc::invalid_argument (bad URL).
void request(boost::asio::io_context& io, ClientRequest req,
             std::function<void(Result<ClientResponse>)> done);

// Blocking convenience for CLIs and tests: runs its own io_context.
[[nodiscard]] Result<ClientResponse> request_sync(ClientRequest req);

// Percent-decoding / encoding of URL parts.
std::string url_decode(std::string_view s);
std::string url_encode(std::string_view s);

}  // namespace patchswarm::http
