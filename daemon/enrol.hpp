// Endpoint enrolment (docs/SECURITY.md, "Enrolment"): `patchswarmd enroll` and
// `run --enroll-token`. The state directory holds the TLS key (tls.key, 0600), the certificate
// the seeder issued for it (tls.crt) and the fleet CA (fleet-ca.pem); with them the endpoint
// joins the fleet's SSL torrents.
//
// Threading: blocking calls for start-up and the CLI (they run their own io_context).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::daemon {

struct TlsIdentity {
    std::string key_pem;
    std::string cert_pem;
    std::string ca_pem;
};

// The device key in `state_dir` (device.key), created on first use. Errc::io and others.
[[nodiscard]] Result<crypto::KeyPair> load_or_create_device_key(
    const std::filesystem::path& state_dir);

// The stored TLS identity, nullopt when the endpoint is not enrolled (no tls.crt). Errors for
// damaged files or a certificate that does not match the key or the CA.
[[nodiscard]] Result<std::optional<TlsIdentity>> load_tls_identity(
    const std::filesystem::path& state_dir);

// The signed POST /v1/enroll body.
std::string make_enrolment(const crypto::KeyPair& device_key, std::string_view tls_public_key,
                           std::string_view token, std::string_view hostname, std::int64_t sent_at);

struct EnrolOptions {
    std::filesystem::path state_dir;
    std::string seeder;  // base URL
    std::string token;
    std::string hostname;       // reported name
    std::string local_address;  // bind the HTTP client here (optional)
    // Network errors and 5xx are retried until this passes; a refusal (4xx) is final.
    std::chrono::seconds retry_for{0};
};

// Creates (or reuses) the device key and the TLS key, sends the enrolment, checks the answer
// (certificate for our key, signed by the returned CA) and stores tls.crt and fleet-ca.pem.
// Errc::permission / Errc::http_status with the seeder's message when refused.
[[nodiscard]] Result<TlsIdentity> enroll(const EnrolOptions& options);

}  // namespace patchswarm::daemon
