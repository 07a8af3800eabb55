// A local control channel: a Unix domain stream socket (Boost.Asio's local::stream_protocol) that
// only root and the process's own user may use, carrying one newline-terminated request and one
// newline-terminated response per connection. The payload is opaque here (daemon/control.hpp
// speaks JSON over it); only local_socket.cpp includes Asio, and everything platform-specific
// (socket files, SO_PEERCRED) stays in it, so a Windows named-pipe twin can implement the same
// interface later.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::io {

struct LocalSocketLimits {
    // One request line, its newline included. A longer line is answered with the handler's
    // answer to Errc::too_large and never reaches it as a request.
    std::size_t max_request_bytes = 64 * 1024;
    std::chrono::milliseconds read_timeout{5'000};   // connect to the request's newline
    std::chrono::milliseconds write_timeout{5'000};  // to write the whole response
    std::size_t max_connections = 16;                // more are closed at once
};

// Called once per connection on the io_context thread, with the request line (its newline
// stripped) or why there is none:
//   Errc::permission  the peer is neither root nor this process's user (nothing was read)
//   Errc::too_large   the line exceeds max_request_bytes
//   Errc::malformed   the peer closed before the newline
//   Errc::network     no complete line within read_timeout
// Returns the response; the server adds the newline. Must not block (it runs on the event loop).
using LocalHandler = std::function<std::string(Result<std::string> request)>;

class LocalSocketServer {
  public:
    // `io` must outlive the server and be run by one thread; the handler runs on it.
    LocalSocketServer(boost::asio::io_context& io, LocalHandler handler,
                      LocalSocketLimits limits = {});
    ~LocalSocketServer();  // stop()s
    LocalSocketServer(const LocalSocketServer&) = delete;
    LocalSocketServer& operator=(const LocalSocketServer&) = delete;

    // Creates the socket file at `path` with mode 0600 and starts accepting. It is bound under a
    // temporary name, restricted, then renamed into place, so it is never reachable at `path`
    // with looser permissions. A socket file that nobody answers on (left by a crashed process)
    // is replaced; anything else at `path` is left alone: Errc::already_exists when a process
    // answers there or the path is not a socket, Errc::invalid_argument when the path, or the
    // temporary name beside it, does not fit a socket address (about 100 bytes), Errc::io when the
    // socket cannot be created. Blocking (a connect to an existing socket file): call at start-up,
    // before io.run().
    [[nodiscard]] Result<void> listen(const std::filesystem::path& path);

    // Stops accepting, closes open connections and removes the socket file if it is still the
    // one listen() created (a successor's is left alone). Idempotent. Call from the io_context
    // thread, or when it is not running.
    void stop();

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

struct LocalRequestOptions {
    std::chrono::milliseconds timeout{10'000};          // whole exchange, connect to newline
    std::size_t max_response_bytes = 16 * 1024 * 1024;  // Errc::too_large beyond this
};

// Blocking client for CLIs and tests (runs its own io_context): connects to `path`, sends
// `request` and a newline, returns the response line without its newline.
//   Errc::not_found          nobody listens there: no socket file, connection refused (a
//                            socket file left by a crashed process), or a path too long for
//                            a socket address (listen() refuses those)
//   Errc::permission         the socket file's mode keeps this user out
//   Errc::network            timeout, or the server closed before a complete line
//   Errc::too_large          the response exceeds max_response_bytes
//   Errc::invalid_argument   `request` contains a newline
[[nodiscard]] Result<std::string> local_request(const std::filesystem::path& path,
                                                std::string_view request,
                                                LocalRequestOptions options = {});

}  // namespace patchswarm::io
