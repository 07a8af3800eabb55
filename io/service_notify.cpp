#include "io/service_notify.hpp"

#include <systemd/sd-daemon.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <string>

namespace patchswarm::io::service {

namespace {

std::string one_line(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    return out;
}

void send(const std::string& message) {
    // unset_environment = 0: later messages need $NOTIFY_SOCKET too. Children never see it:
    // io/process.cpp starts every child with a minimal environment of its own.
    (void)::sd_notify(0, message.c_str());
}

}  // namespace

void notify_ready(std::string_view status) {
    send("READY=1\nSTATUS=" + one_line(status));
}

void notify_status(std::string_view status) {
    send("STATUS=" + one_line(status));
}

void notify_stopping(std::string_view status) {
    send("STOPPING=1\nSTATUS=" + one_line(status));
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    std::uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec);
}

struct Watchdog::Impl : std::enable_shared_from_this<Impl> {
    explicit Impl(boost::asio::io_context& io, std::chrono::microseconds every)
        : timer(io), every(every) {}
    void arm() {
        timer.expires_after(every);
        timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (ec) return;
            send("WATCHDOG=1");
            self->arm();
        });
    }
    boost::asio::steady_timer timer;
    std::chrono::microseconds every;
};

Watchdog::Watchdog(boost::asio::io_context& io) {
    const auto interval = watchdog_interval();
    if (!interval) return;
    impl_ = std::make_shared<Impl>(io, *interval / 2);
    send("WATCHDOG=1");
    impl_->arm();
}

Watchdog::~Watchdog() {
    if (impl_) impl_->timer.cancel();
}

}  // namespace patchswarm::io::service
