// Enrolment (docs/SECURITY.md, "Enrolment"): the fleet CA, enrolment tokens and enrolled
// devices. A repository with a fleet CA (keys/fleet-ca.pem, made by `patchswarm-seeder ca init`)
// publishes SSL torrents and serves only enrolled endpoints: the swarm, the web seed and report
// intake. An endpoint enrols once with a token: POST /v1/enroll carries its device key and its
// TLS public key, signed by the device key; the answer is its certificate and the CA.
//
// Threading: EnrolmentDb owns one SQLite connection to fleet.db; one per thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/sqlite.hpp"
#include "common/x509.hpp"
#include "crypto/crypto.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder {

inline constexpr std::size_t kMaxEnrolmentBytes = 32 * 1024;
inline constexpr std::size_t kMaxTokenLabelBytes = 128;
inline constexpr std::int64_t kEnrolmentClockSkew = 600;  // seconds either way
inline constexpr int kCaDays = 3650;
inline constexpr int kEndpointCertDays = 365;

// keys/fleet-ca.key (0600) and keys/fleet-ca.pem.
std::filesystem::path fleet_ca_key(const RepoPaths& paths);
std::filesystem::path fleet_ca_cert(const RepoPaths& paths);

// Creates the fleet CA unless one exists; returns whether it created one. Errc::io.
[[nodiscard]] Result<bool> init_fleet_ca(const RepoPaths& paths, std::string_view name);
// The fleet CA, nullopt when the repository has none (enrolment off). Errc::permission when
// the key file is readable by others, Errc::malformed for a damaged file.
[[nodiscard]] Result<std::optional<x509::KeyAndCert>> load_fleet_ca(const RepoPaths& paths);

struct EnrolmentRequest {
    std::string device_id;  // seeder::device_id_for(device_key)
    crypto::PublicKey device_key{};
    std::string tls_public_key;  // SubjectPublicKeyInfo PEM (EC P-256)
    std::string token;
    std::string hostname;
    std::int64_t sent_at = 0;  // endpoint clock; strictly increasing per device (replay)
};

// Parses and verifies the POST /v1/enroll body: an envelope of payload type
// crypto::payload_type::enrolment signed by the payload's own device_key, whose device_id
// matches it. Errc::too_large, Errc::malformed, Errc::bad_signature; nothing stored.
[[nodiscard]] Result<EnrolmentRequest> parse_enrolment(std::string_view envelope_json);

// (The endpoint builds it with daemon::make_enrolment.)

struct TokenRow {
    std::string id;  // first 12 hex characters of the token's SHA-256
    std::string label;
    std::int64_t uses_left = 0;
    std::int64_t used = 0;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;  // 0: never
    bool revoked = false;
};

struct NewToken {
    std::string token;  // shown once; only its hash is stored
    std::string id;
};

class EnrolmentDb {
  public:
    // Opens fleet.db (creating the enrolment tables). Errc::database.
    [[nodiscard]] static Result<std::unique_ptr<EnrolmentDb>> open(
        const std::filesystem::path& path);

    // uses >= 1; expires_at 0 for never. Errc::invalid_argument for a bad label or count.
    [[nodiscard]] Result<NewToken> create_token(std::int64_t uses, std::int64_t expires_at,
                                                std::string_view label, std::int64_t now);
    [[nodiscard]] Result<std::vector<TokenRow>> tokens();
    // Errc::not_found unless exactly one token id starts with `id_prefix` (at least 6 chars).
    [[nodiscard]] Result<void> revoke(std::string_view id_prefix);

    // Redeems a token for `req` in one transaction: the token must exist, not be revoked,
    // expired or used up (Errc::permission, the same message for each, so a caller learns
    // nothing about other tokens), and sent_at must be greater than the device's last enrolment
    // (Errc::rollback). Records the device as enrolled (device key pinned: a device id enrolled
    // with another key is Errc::permission). On error nothing changes.
    [[nodiscard]] Result<void> redeem(const EnrolmentRequest& req, std::string_view remote_address,
                                      std::int64_t now);

    // Is this device id enrolled with exactly this key?
    [[nodiscard]] Result<bool> is_enrolled(std::string_view device_id,
                                           const crypto::PublicKey& key);
    // Did an enrolled device enrol or last report from this address?
    [[nodiscard]] Result<bool> is_enrolled_address(std::string_view address);
    [[nodiscard]] Result<std::size_t> enrolled_count();

  private:
    explicit EnrolmentDb(std::unique_ptr<Db> db) : db_(std::move(db)) {}
    std::unique_ptr<Db> db_;
};

}  // namespace patchswarm::seeder
