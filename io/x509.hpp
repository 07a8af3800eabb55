// X.509 for the fleet's SSL torrents, behind project types. Only x509.cpp includes OpenSSL.
//
// The fleet CA signs one certificate per enrolled endpoint (and one for the seeder); an SSL
// torrent carries the CA certificate, and libtorrent accepts only peers whose certificate chains
// to it. Keys are EC P-256; every PEM input is bounded before OpenSSL parses it.
//
// Threading: pure functions, callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace patchswarm::io::x509 {

inline constexpr std::size_t kMaxPemBytes = 16 * 1024;
inline constexpr std::size_t kMaxCommonNameBytes = 64;

struct KeyAndCert {
    std::string key_pem;   // PKCS#8 private key
    std::string cert_pem;  // X.509 certificate
};

// A new private key (EC P-256), PEM.
[[nodiscard]] Result<std::string> generate_key();
// The public key of a private key PEM, as SubjectPublicKeyInfo PEM. Errc::malformed.
[[nodiscard]] Result<std::string> public_key_of(std::string_view key_pem);

// A new self-signed CA (its own key), CN `common_name`, valid from now - 1 h for `days`.
[[nodiscard]] Result<KeyAndCert> make_ca(std::string_view common_name, int days);

// Certificates are valid from this long before they are issued, so that a peer whose clock is a
// little behind does not refuse a fresh one.
inline constexpr std::int64_t kBackdateSeconds = 3600;

// A leaf certificate for `public_key_pem` (SubjectPublicKeyInfo PEM), CN `common_name` (printable
// ASCII, spaces allowed, at most kMaxCommonNameBytes), signed by the CA, valid from
// now - kBackdateSeconds until now + `lifetime_s` (never past the CA's own expiry). Endpoint
// certificates are short-lived and renewed (docs/SECURITY.md, "Revocation"). Errc::malformed for
// bad PEM, Errc::invalid_argument for a bad name or a lifetime under 10 s.
[[nodiscard]] Result<std::string> issue(const KeyAndCert& ca, std::string_view public_key_pem,
                                        std::string_view common_name, std::int64_t lifetime_s);

struct CertInfo {
    std::string common_name;
    std::int64_t not_before = 0;  // unix seconds
    std::int64_t not_after = 0;
};
// Parses one certificate PEM (bounded). Errc::too_large / Errc::malformed.
[[nodiscard]] Result<CertInfo> inspect(std::string_view cert_pem);

// Does `cert_pem` chain directly to `ca_pem` (signature), is it valid at `now` (unless nullopt),
// and does its public key match `key_pem` (when given)? Errc::bad_signature, Errc::expired,
// Errc::malformed.
[[nodiscard]] Result<void> check(std::string_view cert_pem, std::string_view ca_pem,
                                 std::string_view key_pem, std::optional<std::int64_t> now);

// RFC 7919 ffdhe2048 parameters as PEM (libtorrent's SSL context wants DH parameters; ECDHE
// suites do not use them, but an empty buffer is an error).
[[nodiscard]] Result<std::string> dh_params_pem();

}  // namespace patchswarm::io::x509
