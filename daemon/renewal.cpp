#include "daemon/renewal.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio.hpp>

#include "core/rollout.hpp"
#include "io/env.hpp"
#include "io/x509.hpp"

namespace patchswarm::daemon {

struct Renewal::Timer {
    explicit Timer(boost::asio::io_context& io) : t(io) {}
    boost::asio::steady_timer t;
};

Renewal::Renewal(boost::asio::io_context& io, io::Env& env, EnrolOptions options,
                 std::optional<TlsIdentity> identity,
                 std::function<void(const TlsIdentity&)> on_renewed)
    : io_(io),
      env_(env),
      options_(std::move(options)),
      tls_(std::move(identity)),
      on_renewed_(std::move(on_renewed)),
      timer_(std::make_unique<Timer>(io)) {
    options_.env = &env_;
}

Renewal::~Renewal() = default;

void Renewal::start() {
    if (!tls_) return;
    // Enrolled before web secrets (and long certificates): renew now to get both.
    arm(tls_->web_secret.empty() ? 0 : renew_at(*tls_));
}

void Renewal::stop() {
    stopping_ = true;
    timer_->t.cancel();
}

void Renewal::arm(std::int64_t at) {
    const std::int64_t delay = std::max<std::int64_t>(0, at - env_.now_unix());
    timer_->t.expires_after(std::chrono::seconds(delay));
    timer_->t.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopping_) renew();
    });
}

void Renewal::renew() {
    const std::int64_t lifetime = tls_->not_after - (tls_->not_before + io::x509::kBackdateSeconds);
    const std::int64_t retry_s = std::clamp<std::int64_t>(lifetime / 10, 5, 300);
    auto req = enrolment_request(options_);
    if (!req) {
        spdlog::error("certificate renewal: {}", req.error().message);
        return arm(env_.now_unix() + retry_s);
    }
    io::http::request(io_, std::move(*req), [this, retry_s](Result<io::http::ClientResponse> r) {
        if (stopping_) return;
        auto id = accept_enrolment(options_, r);
        if (!id) {
            // Revoked or unknown: asking every few seconds changes nothing, the admin does.
            const bool refused = id.error().code == Errc::permission;
            spdlog::log(refused ? spdlog::level::err : spdlog::level::warn,
                        "certificate renewal failed (certificate valid until {}): {}",
                        core::format_utc(tls_->not_after), id.error().message);
            return arm(env_.now_unix() +
                       (refused ? std::max<std::int64_t>(retry_s, 300) : retry_s));
        }
        tls_ = std::move(*id);
        spdlog::info("renewed TLS certificate, valid until {}", core::format_utc(tls_->not_after));
        on_renewed_(*tls_);
        arm(tls_->web_secret.empty() ? env_.now_unix() + retry_s : renew_at(*tls_));
    });
}

}  // namespace patchswarm::daemon
