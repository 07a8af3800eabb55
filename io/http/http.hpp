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

#include "base/error.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::io::http {

// ---- server ----------------------------------------------------------------------------------
struct Request {
    std::string method;                          // "GET", "POST", ...
    std::string target;                          // raw request target, e.g. "/v1/feed?after=3"
    std::string path;                            // percent-decoded path part, e.g. "/v1/feed"
    std::map<std::string, std::string> query;    // percent-decoded; last value wins
    std::string raw_query;                       // undecoded query string (tracker needs raw bytes)
    std::map<std::string, std::string> headers;  // field names lowercased
    std::string body;
    std::string remote_address;  // peer IP as text
    std::string client;  // rate-limit key of the peer: core::rate_limit_client(remote_address)
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

// The user name and password of an `Authorization: Basic` header (RFC 7617), nullopt when the
// request has none or it does not decode to "user:password".
std::optional<std::pair<std::string, std::string>> basic_credentials(const Request& req);

Response text_response(int status, std::string body);  // text/plain; charset=utf-8
Response json_response(int status, std::string body);

// Builds the answer for a GET of a file, honouring a single "Range: bytes=a-b" (206, or 416
// when unsatisfiable). 404 if the file does not exist or is not a regular file; a symlink is
// refused too, since its target escaped the caller's path checks. Several ranges or a Range the
// parser does not understand are ignored (200 with the whole file, as RFC 7233 allows). The
// server sends Accept-Ranges and Content-Length for file responses and answers HEAD without body.
Response file_response(const std::filesystem::path& file, const std::string* range_header,
                       const std::string& content_type = "application/octet-stream");

// Called once per request; call `respond` exactly once, now or later (long-poll). Calls happen
// on the io_context thread. `respond` keeps the connection's state alive until it is called or
// destroyed; calling it again is a no-op, and so is calling it after the 503 that answers a
// request left unanswered for handler_timeout, or after the client went away. It may be called
// from inside the handler. Called from another thread, it hops onto the io_context first.
using Respond = std::function<void(Response)>;
using Handler = std::function<void(Request&&, Respond)>;

// A header over max_header_bytes gets 431, a body over max_body_bytes 413, a malformed request
// 400; each then closes the connection. Connections beyond max_connections, or beyond
// max_connections_per_client from one client, are closed at once.
struct ServerLimits {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1 << 20;
    std::chrono::seconds read_timeout{15};     // to read a full request
    std::chrono::seconds write_timeout{120};   // to write a response
    std::chrono::seconds idle_timeout{60};     // keep-alive between requests
    std::chrono::seconds handler_timeout{90};  // an unanswered request gets 503
    std::size_t max_connections = 4096;
    // Open connections per client (IPv4 address or IPv6 /64); more are closed at once.
    std::size_t max_connections_per_client = 1024;
};

class Server {
  public:
    // `io` must outlive the Server and be run by one thread; the handler runs on it.
    Server(boost::asio::io_context& io, Handler handler, ServerLimits limits = {});
    ~Server();  // stop()s
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    // Binds and starts accepting. "127.0.0.1:8080", "[::1]:8080", ":8080" (all IPv4
    // interfaces); port 0 picks a free port. Returns the bound port. Errc::network when the
    // address cannot be bound (nothing is left open), Errc::invalid_argument when it is not
    // host:port. May be called again to listen on further addresses.
    [[nodiscard]] Result<std::uint16_t> listen(const std::string& host_port);
    // Closes the listeners and every open connection. Pending Respond calls become no-ops.
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
// Errc::network / Errc::too_large / Errc::invalid_argument (bad URL).
void request(boost::asio::io_context& io, ClientRequest req,
             std::function<void(Result<ClientResponse>)> done);

// Blocking convenience for CLIs and tests: runs its own io_context.
[[nodiscard]] Result<ClientResponse> request_sync(ClientRequest req);

// Percent-decoding / encoding of URL parts. url_decode keeps '+' and malformed escapes as they
// are; the server decodes query components with '+' as space (form encoding). url_encode escapes
// everything except RFC 3986 unreserved characters.
std::string url_decode(std::string_view s);
std::string url_encode(std::string_view s);

}  // namespace patchswarm::io::http
