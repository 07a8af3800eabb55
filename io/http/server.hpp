// The HTTP/1.1 server on Boost.Beast, behind the small project types of parse.hpp so that only
// server.cpp includes Beast. It runs on the program's single io_context; every operation has a
// timeout, and the limits below bound what one client can hold.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/error.hpp"
#include "io/http/file_response.hpp"  // file_response, for the handlers that serve files
#include "io/http/parse.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::io::http {

// Called once per request; call `respond` exactly once, now or later (long-poll). Calls happen
// on the io_context thread. `respond` keeps the connection's state alive until it is called or
// destroyed; calling it again is a no-op, and so is calling it after the 503 that answers a
// request left unanswered for handler_timeout, or after the client went away. It may be called
// from inside the handler. Called from another thread, it hops onto the io_context first.
using Respond = std::function<void(Response)>;
using Handler = std::function<void(Request&&, Respond)>;

// A header over max_header_bytes gets 431, a body over max_body_bytes 413, a malformed request
// 400; each then closes the connection. Connections beyond max_connections, or beyond
// max_connections_per_client from one client, are closed at once. A client that closes its
// connection (or half-closes it) while its request is held is dropped at once, so a dead
// long-poll does not keep a slot; its Respond becomes a no-op.
struct ServerLimits {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1 << 20;
    std::chrono::seconds read_timeout{15};     // to read a full request
    std::chrono::seconds write_timeout{120};   // to write a response
    std::chrono::seconds idle_timeout{60};     // keep-alive between requests
    std::chrono::seconds handler_timeout{90};  // an unanswered request gets 503
    // Each is one descriptor: size it from the open-file limit (io/fd_limit.hpp).
    std::size_t max_connections = 4096;
    // Open connections per client (IPv4 address or IPv6 /64); more are closed at once.
    std::size_t max_connections_per_client = 1024;

    MessageLimits message_limits() const { return {max_header_bytes, max_body_bytes}; }
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

}  // namespace patchswarm::io::http
