// Enrolment (docs/SECURITY.md, "Enrolment"): the fleet CA, enrolment tokens and enrolled
// devices. A repository with a fleet CA (keys/fleet-ca.pem, made by `patchswarm-seeder ca init`)
// publishes SSL torrents and serves only enrolled endpoints: the swarm, the web seed and report
// intake. An endpoint enrols once with a token: POST /v1/enroll carries its device key and its
// TLS public key, signed by the device key and by the token's key; the answer is a short-lived
// certificate, the CA and a secret for the web seed. Before the certificate expires the
// endpoint renews it with the same request signed by its device key alone; a revoked device is
// refused, so it drops out of the swarm when its certificate runs out.
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

#include "base/error.hpp"
#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/sqlite.hpp"
#include "io/x509.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder {

inline constexpr std::size_t kMaxEnrolmentBytes = 32 * 1024;
inline constexpr std::size_t kMaxTokenLabelBytes = 128;
inline constexpr std::int64_t kEnrolmentClockSkew = 600;  // seconds either way
inline constexpr int kCaDays = 3650;
// Endpoint certificates are short-lived and renewed with the device key at half their life: a
// revoked device drops out of the SSL swarm when its last certificate expires (libtorrent
// cannot check a revocation list). `serve --cert-lifetime` sets it.
inline constexpr std::int64_t kDefaultCertLifetime = 7 * 86'400;
// The seeder's own certificate; it reissues it at half its life.
inline constexpr std::int64_t kSeederCertLifetime = 30 * 86'400;
inline constexpr std::size_t kWebSecretBytes = 32;

// keys/fleet-ca.key (0600) and keys/fleet-ca.pem.
std::filesystem::path fleet_ca_key(const RepoPaths& paths);
std::filesystem::path fleet_ca_cert(const RepoPaths& paths);

// Creates the fleet CA unless one exists; returns whether it created one. Errc::io.
[[nodiscard]] Result<bool> init_fleet_ca(const RepoPaths& paths, std::string_view name);
// The fleet CA, nullopt when the repository has none (enrolment off). Errc::permission when
// the key file is readable by others, Errc::malformed for a damaged file.
[[nodiscard]] Result<std::optional<io::x509::KeyAndCert>> load_fleet_ca(const RepoPaths& paths);

struct EnrolmentRequest {
    std::string device_id;  // seeder::device_id_for(device_key)
    crypto::PublicKey device_key{};
    std::string tls_public_key;  // SubjectPublicKeyInfo PEM (EC P-256)
    // The enrolment token's public key (core::enrol_token_key), which also signed the request:
    // a first enrolment. Absent: a renewal, which only an enrolled, unrevoked device may ask for.
    std::optional<crypto::PublicKey> token_key;
    std::string hostname;
    std::int64_t sent_at = 0;  // endpoint clock; strictly increasing per device (replay)
};

// Parses and verifies the POST /v1/enroll body: an envelope of payload type
// core::payload_type::enrolment signed by the payload's own device_key, whose device_id
// matches it, and, when it names a token_key, signed by that key too. Errc::too_large,
// Errc::malformed, Errc::bad_signature; nothing stored.
[[nodiscard]] Result<EnrolmentRequest> parse_enrolment(std::string_view envelope_json);

// (The endpoint builds it with daemon::make_enrolment.)

struct TokenRow {
    std::string id;  // first 12 hex characters of the token's public key
    std::string label;
    std::int64_t uses_left = 0;
    std::int64_t used = 0;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;  // 0: never
    bool revoked = false;
};

struct NewToken {
    std::string token;  // shown once; only its public key is stored
    std::string id;
};

struct DeviceRow {
    std::string device_id;
    std::string hostname;
    std::string remote_address;  // of its last enrolment or renewal
    std::string token_label;
    std::string token_id;             // the token it last enrolled with (token list's id)
    std::int64_t enrolled_at = 0;     // first enrolment with a token
    std::int64_t renewed_at = 0;      // last certificate (enrolment or renewal)
    std::int64_t cert_not_after = 0;  // the last certificate's expiry
    std::int64_t revoked_at = 0;      // 0: not revoked
};

// What a granted enrolment or renewal records beside the request.
struct Grant {
    std::string web_secret_sha256;  // hex SHA-256 of the web seed secret handed to the device
    std::int64_t cert_not_after = 0;
};

class EnrolmentDb {
  public:
    // Opens fleet.db (creating or migrating the enrolment tables). Errc::database.
    [[nodiscard]] static Result<std::unique_ptr<EnrolmentDb>> open(
        const std::filesystem::path& path);

    // uses >= 1; expires_at 0 for never. Errc::invalid_argument for a bad label or count.
    [[nodiscard]] Result<NewToken> create_token(std::int64_t uses, std::int64_t expires_at,
                                                std::string_view label, std::int64_t now);
    [[nodiscard]] Result<std::vector<TokenRow>> tokens();
    // Errc::not_found unless exactly one token id starts with `id_prefix` (at least 6 chars).
    [[nodiscard]] Result<void> revoke(std::string_view id_prefix);

    // Grants `req` in one transaction. With a token_key (a first enrolment, or a re-enrolment):
    // the token must exist, not be revoked, expired or used up (Errc::permission, the same
    // message for each, so a caller learns nothing about other tokens); one use is spent.
    // Without (a renewal): the device must be enrolled with exactly this key (Errc::permission).
    // Either way a revoked device is refused (Errc::permission), a device id enrolled with
    // another key is refused (Errc::permission), and sent_at must be greater than the device's
    // last request (Errc::rollback). On error nothing changes.
    [[nodiscard]] Result<void> grant(const EnrolmentRequest& req, std::string_view remote_address,
                                     const Grant& grant, std::int64_t now);
    // grant()'s checks alone, read-only and without a write lock: a request that would be
    // refused costs no certificate and holds no lock (grant() checks again).
    [[nodiscard]] Result<void> check(const EnrolmentRequest& req, std::int64_t now);

    // Is this device id enrolled with exactly this key, and not revoked?
    [[nodiscard]] Result<bool> is_enrolled(std::string_view device_id,
                                           const crypto::PublicKey& key);
    // Does `web_secret` belong to this enrolled, unrevoked device, whose last certificate is
    // still valid at `now`? (A secret lives no longer than the certificate it came with.)
    // Constant-time compare.
    [[nodiscard]] Result<bool> web_secret_valid(std::string_view device_id,
                                                std::string_view web_secret, std::int64_t now);
    // Enrolled devices that are not revoked.
    [[nodiscard]] Result<std::size_t> enrolled_count();
    [[nodiscard]] Result<std::vector<DeviceRow>> devices();
    struct Revoked {
        std::string device_id;
        std::string token_id;  // the token it last enrolled with ("" if unknown)
        bool already = false;  // it was revoked before
    };
    // Revokes the one device whose id starts with `id_prefix` (at least 6 hex characters):
    // its reports, web seed requests and renewals are refused from now on, and its certificate
    // is not renewed, so it leaves the SSL swarm when that expires. With `and_token`, the token
    // it enrolled with is revoked too (a token left on a stolen machine would enrol it again
    // under a new device key). Errc::invalid_argument, Errc::not_found.
    [[nodiscard]] Result<Revoked> revoke_device(std::string_view id_prefix, bool and_token,
                                                std::int64_t now);

  private:
    explicit EnrolmentDb(std::unique_ptr<io::Db> db) : db_(std::move(db)) {}
    Result<void> migrate();
    // The refusals of grant(); the token label to record when admissible.
    Result<std::string> admissible(const EnrolmentRequest& req, std::int64_t now);
    std::unique_ptr<io::Db> db_;
};

}  // namespace patchswarm::seeder
