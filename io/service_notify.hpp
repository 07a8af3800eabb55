// Telling the service manager (systemd, Type=notify) what the program is doing, through
// sd_notify(3): READY=1 once it listens, STATUS= lines for `systemctl status`, STOPPING=1, and
// WATCHDOG=1 keep-alives when the unit sets WatchdogSec=. Every call is a no-op when
// $NOTIFY_SOCKET is unset (started by hand, in tests, under another supervisor), so callers never
// check. Only service_notify.cpp includes libsystemd; a Windows build can replace that file with
// one that does nothing.
//
// Threading: any thread (sd_notify is a single datagram); Watchdog on its io_context's thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace patchswarm::io::service {

// READY=1 and STATUS=`status`: start-up is over (sockets listening, state open).
void notify_ready(std::string_view status);
// STATUS=`status` (one line; newlines are replaced by spaces).
void notify_status(std::string_view status);
// STOPPING=1 and STATUS=`status`.
void notify_stopping(std::string_view status);

// The keep-alive interval the manager asked for ($WATCHDOG_USEC, for this process), or nullopt.
[[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval();

// Sends WATCHDOG=1 at half the interval the manager asked for, on `io`, for as long as the
// object lives and `io` runs; does nothing if no watchdog was asked for. A hung io_context stops
// the keep-alives, so systemd restarts a wedged daemon.
class Watchdog {
  public:
    explicit Watchdog(boost::asio::io_context& io);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace patchswarm::io::service
