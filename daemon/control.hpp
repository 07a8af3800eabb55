// The daemon's local control protocol: how `patchswarmd status` and `patchswarmd defer` talk to
// the running agent instead of editing state.db behind its back (docs/PROTOCOL.md, "Control
// socket"). One JSON request line and one JSON response line per connection on a Unix socket in
// the state folder (io/local_socket.hpp), which only root and the daemon's user may use.
//
//   {"op":"status"}                            -> {"ok":true,"status":<docs/STATUS_JSON.md>}
//   {"op":"defer","release":"ID","until":T}    -> {"ok":true,"release":"ID","deferred_until":T'}
//   {"op":"defer","release":"ID","until":null} -> {"ok":true,"release":"ID","deferred_until":null}
//   anything else                              -> {"ok":false,"error":"<Errc>","message":"..."}
//
// The protocol is a pure request -> response function (handle_control_request) against a small
// interface of what it needs from the agent (ControlTarget); ControlServer puts it on a socket.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "io/local_socket.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::daemon {

// The one place that names the control socket: <state_dir>/control.sock.
std::filesystem::path control_socket_path(const std::filesystem::path& state_dir);

// The latest `until` a request may carry: what `defer --until` accepts (core::parse_time_spec),
// 9999-12-31T23:59:59Z. The earliest is 0; whether it lies in the future is the target's call.
inline constexpr std::int64_t kMaxDeferUntil = 253402300799;

// What the control protocol needs from the agent. Called on the agent's io_context thread only
// (ControlServer calls it from there), synchronously: neither call may block on I/O beyond a
// quick state.db read or write.
struct ControlTarget {
    virtual ~ControlTarget();
    // The endpoint status document, exactly what `patchswarmd status --json` prints from
    // state.db (docs/STATUS_JSON.md; daemon::endpoint_status builds it).
    [[nodiscard]] virtual Result<nlohmann::json> status() = 0;
    // Holds back release `release_id`'s install and reboot until `until` (unix seconds), or
    // clears the deferral (nullopt). Returns the deferral as stored: `until` clamped to the
    // release's deadline, nullopt when cleared. Errors as daemon::defer_release (which
    // daemon::plan_deferral implements): Errc::not_found for an unknown release,
    // Errc::invalid_argument for `until` not after now or a release past deferring.
    [[nodiscard]] virtual Result<std::optional<std::int64_t>> defer(
        const std::string& release_id, std::optional<std::int64_t> until) = 0;
};

// A ControlTarget made of two callables, for an owner that would rather not derive from it:
//   control_target_ = std::make_unique<daemon::CallbackControlTarget>(
//       [this] { return status_json(); },
//       [this](const std::string& id, std::optional<std::int64_t> t) { return defer(id, t); });
class CallbackControlTarget : public ControlTarget {
  public:
    using StatusFn = std::function<Result<nlohmann::json>()>;
    using DeferFn = std::function<Result<std::optional<std::int64_t>>(const std::string&,
                                                                      std::optional<std::int64_t>)>;
    CallbackControlTarget(StatusFn status, DeferFn defer)
        : status_(std::move(status)), defer_(std::move(defer)) {}
    Result<nlohmann::json> status() override { return status_(); }
    Result<std::optional<std::int64_t>> defer(const std::string& release_id,
                                              std::optional<std::int64_t> until) override {
        return defer_(release_id, until);
    }

  private:
    StatusFn status_;
    DeferFn defer_;
};

// The protocol: one request line (or the transport's reason there is none: io::LocalHandler)
// -> one response line. Validates every field before calling `target`, so a malformed, unknown,
// oversized or refused request changes nothing: the request must be one JSON object (strict:
// no duplicate keys, no NUL, bounded depth) with exactly the fields of its op, `release` a
// valid release id (core::validate_release_id), `until` null or an integer in
// 0..kMaxDeferUntil. Pure apart from what `target` does; never throws.
std::string handle_control_request(const Result<std::string>& request, ControlTarget& target);

// The client's side of a response line: the response object when "ok" is true, else its error
// (code and message as the daemon sent them; Errc::malformed when the line is not a response).
[[nodiscard]] Result<nlohmann::json> decode_control_response(std::string_view line);

// The CLI's calls. nullopt when no daemon answers on the state folder's socket (no socket
// file, or connection refused): the caller reads or writes state.db directly instead. Otherwise
// the daemon's answer, or why there is none (Errc::permission: not root nor the daemon's user;
// Errc::network: timeout). Blocking.
std::optional<Result<nlohmann::json>> ask_daemon_status(const std::filesystem::path& state_dir);
std::optional<Result<std::optional<std::int64_t>>> ask_daemon_defer(
    const std::filesystem::path& state_dir, const std::string& release_id,
    std::optional<std::int64_t> until);

// Serves the control socket for the agent: owns the socket server and answers each request by
// calling `target` on the io_context thread. The agent owns one beside its other services:
//
//   control_ = std::make_unique<daemon::ControlServer>(io, *control_target_);
//   if (auto ok = control_->listen(cfg.state_dir); !ok)                      // at start()
//       spdlog::warn("control socket: {}", ok.error().message);  // status/defer use state.db
//   control_->stop();                                                        // at shutdown()
class ControlServer {
  public:
    // `io` and `target` must outlive the server; `io` is run by one thread.
    ControlServer(boost::asio::io_context& io, ControlTarget& target,
                  io::LocalSocketLimits limits = {});
    // Creates control_socket_path(state_dir) (mode 0600) and starts answering; replaces a stale
    // socket file, never a live one (Errc::already_exists: another daemon runs on this folder).
    // Errors as io::LocalSocketServer::listen. Call at start-up.
    [[nodiscard]] Result<void> listen(const std::filesystem::path& state_dir);
    // Stops answering and removes the socket file. Idempotent; the destructor calls it. Until
    // then the pending accept is work on `io`: call it at shutdown, or io.run() never returns.
    void stop();

  private:
    io::LocalSocketServer server_;
};

}  // namespace patchswarm::daemon
