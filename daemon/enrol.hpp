// Endpoint enrolment (docs/SECURITY.md, "Enrolment"): `patchswarmd enroll`, `run
// --enroll-token` and the agent's certificate renewal. The state directory holds the TLS key
// (tls.key, 0600), the certificate the seeder issued for it (tls.crt), the fleet CA
// (fleet-ca.pem) and the web seed secret (web.secret, 0600); with them the endpoint joins the
// fleet's SSL torrents and may use the seeder's web seed.
//
// Threading: enroll() blocks (start-up and the CLI; it runs its own io_context); the rest are
// plain functions of the caller's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "crypto/crypto.hpp"
#include "io/http/client.hpp"

namespace patchswarm::io {
class Env;
}

namespace patchswarm::daemon {

inline constexpr std::size_t kMaxEnrolmentAnswerBytes = 64 * 1024;
// The longest certificate an endpoint accepts (serve --cert-lifetime allows a year).
inline constexpr std::int64_t kMaxCertLifetimeSeconds = 366 * 86'400;

struct TlsIdentity {
    std::string key_pem;
    std::string cert_pem;
    std::string ca_pem;
    std::string web_secret;  // the web seed's Basic password; empty before one was issued
    std::int64_t not_before = 0;
    std::int64_t not_after = 0;
};

// When to renew: half way through the certificate's life (counted from its issue, not from
// its backdated start), so a renewal has half the lifetime to succeed.
std::int64_t renew_at(const TlsIdentity& id);

// The device key in `state_dir` (device.key), created on first use. Errc::io and others.
[[nodiscard]] Result<crypto::KeyPair> load_or_create_device_key(
    const std::filesystem::path& state_dir);

// The stored TLS identity, nullopt when the endpoint is not enrolled (no tls.crt). Errors for
// damaged files or a certificate that does not match the key or the CA. An expired certificate
// is returned as it is (not_after tells): the caller renews it with the device key.
[[nodiscard]] Result<std::optional<TlsIdentity>> load_tls_identity(
    const std::filesystem::path& state_dir);

// The signed POST /v1/enroll body: a first enrolment when `token_key` is given (the request is
// then signed by it as well), a renewal otherwise.
std::string make_enrolment(const crypto::KeyPair& device_key, std::string_view tls_public_key,
                           const crypto::KeyPair* token_key, std::string_view hostname,
                           std::int64_t sent_at);

struct EnrolOptions {
    std::filesystem::path state_dir;
    std::string seeder;         // base URL
    std::string token;          // "pst_..."; empty: renew the enrolment this state folder holds
    std::string hostname;       // reported name
    std::string local_address;  // bind the HTTP client here (optional)
    // Network errors and 5xx are retried until this passes; a refusal (4xx) is final.
    std::chrono::seconds retry_for{0};
    // The clock and the writes of the enrolment files; null: a PosixEnv of this process.
    io::Env* env = nullptr;
};

// The POST /v1/enroll request enroll() sends (a fresh sent_at each call), for callers with their
// own io_context (the agent renews asynchronously). Creates the device and TLS keys when
// missing. Errc::invalid_argument for a malformed token.
[[nodiscard]] Result<io::http::ClientRequest> enrolment_request(const EnrolOptions& options);

// Checks the seeder's answer to the request `options` describe (a certificate for our TLS key
// and device id, signed by the returned CA, valid now and for at most a year; for a renewal, the
// CA must be the one stored at enrolment) and stores fleet-ca.pem, web.secret (0600) and tls.crt,
// in that order. Errc::permission / Errc::http_status with the seeder's message when it refused.
[[nodiscard]] Result<TlsIdentity> accept_enrolment(const EnrolOptions& options,
                                                   const Result<io::http::ClientResponse>& answer);

// enrolment_request, sent (retrying as options say), accept_enrolment.
[[nodiscard]] Result<TlsIdentity> enroll(const EnrolOptions& options);

}  // namespace patchswarm::daemon
