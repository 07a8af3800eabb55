// Certificate renewal: half way through its life the endpoint certificate is renewed with the
// device key (no token). A revoked device is refused and drops out of the SSL swarm when it
// expires. One one-shot timer, armed for the instant renewal is due (or the next retry).
//
// Threading: the io_context thread only. `env` outlives it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "daemon/enrol.hpp"

namespace boost::asio {
class io_context;
}
namespace patchswarm::io {
class Env;
}

namespace patchswarm::daemon {

class Renewal {
  public:
    // `options` describe the enrolment to renew (state dir, HQ, host name, bind address).
    // `on_renewed` runs on the io_context thread with the new identity (already stored).
    Renewal(boost::asio::io_context& io, io::Env& env, EnrolOptions options,
            std::optional<TlsIdentity> identity,
            std::function<void(const TlsIdentity&)> on_renewed);
    ~Renewal();

    // Arms the timer (nothing to do when not enrolled).
    void start();
    void stop();
    const std::optional<TlsIdentity>& identity() const { return tls_; }

  private:
    void arm(std::int64_t at);
    void renew();

    boost::asio::io_context& io_;
    io::Env& env_;
    EnrolOptions options_;
    std::optional<TlsIdentity> tls_;
    std::function<void(const TlsIdentity&)> on_renewed_;
    bool stopping_ = false;
    struct Timer;
    std::unique_ptr<Timer> timer_;
};

}  // namespace patchswarm::daemon
