// Key files on disk: the Ed25519 key pairs of the root, release, feed and device roles, and the
// SHA-256 of a file. The format is in docs/PROTOCOL.md; reading and writing go through POSIX
// calls with permission checks, so this is an adapter, not crypto/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "base/error.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::io {

using crypto::KeyPair;
using crypto::PublicKey;
using crypto::Sha256;

// SHA-256 of a file's content, reading at most max_bytes (Errc::too_large beyond that).
// Errc::not_found if the file is absent, Errc::io for other OS errors.
[[nodiscard]] Result<Sha256> sha256_file(const std::filesystem::path& path,
                                         std::uint64_t max_bytes);

// ---- key files -------------------------------------------------------------------------------
// Public key file:  {"type":"ed25519-public","public":"<hex>","keyid":"<hex>"}
// Secret key file:  {"type":"ed25519-secret","seed":"<hex>","public":"<hex>"}, mode 0600.
// write_keypair(base) writes base.key (0600) and base.pub; Errc::already_exists if either exists
// (nothing is overwritten), Errc::io / Errc::not_found for OS errors. Both files are fsynced.
[[nodiscard]] Result<void> write_keypair(const std::filesystem::path& base, const KeyPair& kp);
// Errc::permission if the file is readable or writable by group/others; Errc::malformed if the
// content is not a key file or the public half does not match the seed.
[[nodiscard]] Result<KeyPair> load_secret_key(const std::filesystem::path& path);
[[nodiscard]] Result<PublicKey> load_public_key(const std::filesystem::path& path);
[[nodiscard]] Result<PublicKey> parse_public_key(std::string_view file_content);

}  // namespace patchswarm::io
