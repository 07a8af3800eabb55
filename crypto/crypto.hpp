// Keys, signatures, hashes and the signed envelope that every patchswarm document travels in.
//
// All functions are thread-safe once init() has returned. Nothing here touches the network; the
// only disk I/O is reading and writing key files.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace patchswarm::crypto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Must be called once before anything else (wraps sodium_init). Throws std::runtime_error if
// libsodium cannot initialise.
void init();

// ---- encodings -------------------------------------------------------------------------------
// Decoders are strict (Errc::malformed otherwise): from_hex takes lowercase hex of even length
// only, and from_base64 only the canonical padded form (no whitespace, no missing padding, no
// stray bits in the last character), so every byte string has exactly one accepted encoding.
std::string to_hex(ByteView bytes);  // lowercase
[[nodiscard]] Result<Bytes> from_hex(std::string_view hex);
std::string to_base64(ByteView bytes);  // standard alphabet, padded
[[nodiscard]] Result<Bytes> from_base64(std::string_view b64);

// ---- secrets ---------------------------------------------------------------------------------
// `n` bytes from the system's CSPRNG.
Bytes random_bytes(std::size_t n);
// Equality that takes the same time wherever the inputs differ (for secrets such as tokens).
// Inputs of different lengths are unequal; the length itself is not treated as secret.
bool equal_constant_time(ByteView a, ByteView b);

// ---- hashing ---------------------------------------------------------------------------------
using Sha256 = std::array<std::uint8_t, 32>;
Sha256 sha256(ByteView bytes);
std::string sha256_hex(ByteView bytes);

// Incremental SHA-256 for files and streams. Not thread-safe; one owner feeds it.
class Sha256Stream {
  public:
    Sha256Stream();
    void update(ByteView bytes);
    Sha256 finish();  // may be called once
  private:
    alignas(64) std::array<std::uint8_t, 128> state_{};  // crypto_hash_sha256_state storage
};

// SHA-256 of a file's content, reading at most max_bytes (Errc::too_large beyond that).
// Errc::not_found if the file is absent, Errc::io for other OS errors.
[[nodiscard]] Result<Sha256> sha256_file(const std::filesystem::path& path,
                                         std::uint64_t max_bytes);

// ---- Ed25519 ---------------------------------------------------------------------------------
using PublicKey = std::array<std::uint8_t, 32>;
using SecretKey = std::array<std::uint8_t, 64>;  // libsodium layout: seed || public key
using Signature = std::array<std::uint8_t, 64>;

struct KeyPair {
    PublicKey public_key;
    SecretKey secret_key;
};

KeyPair generate_keypair();
KeyPair keypair_from_seed(std::span<const std::uint8_t, 32> seed);

// A key id is the lowercase hex SHA-256 of the 32 public key bytes.
std::string key_id(const PublicKey& key);

Signature sign_detached(ByteView message, const SecretKey& key);
bool verify_detached(ByteView message, const Signature& sig, const PublicKey& key);

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

// ---- signed envelope -------------------------------------------------------------------------
// Every signed document is carried as
//   {"payload_type":"<type>","payload":"<base64 of exact bytes>",
//    "signatures":[{"keyid":"<hex>","sig":"<base64>"}, ...]}
// A signature covers pre_auth_encoding(type, payload) = "patchswarm-v1\0" + type + "\0" +
// decimal(len(payload)) + "\0" + payload, so a signature for one document type can never be
// replayed as another (domain separation) and never depends on JSON re-serialisation.
namespace payload_type {
inline constexpr std::string_view manifest = "application/vnd.patchswarm.manifest+json";
inline constexpr std::string_view feed = "application/vnd.patchswarm.feed+json";
// Retired with the issue 2 trust chain (the root names the feed key); kept so the type is never
// reused for something else.
inline constexpr std::string_view delegation = "application/vnd.patchswarm.delegation+json";
inline constexpr std::string_view report = "application/vnd.patchswarm.report+json";
inline constexpr std::string_view root = "application/vnd.patchswarm.root+json";
// An endpoint asking to be enrolled (docs/PROTOCOL.md, "Enrolment"), signed by its device key.
inline constexpr std::string_view enrolment = "application/vnd.patchswarm.enrolment+json";
}  // namespace payload_type

// Bound on signatures per envelope, so verification work per document stays small.
inline constexpr std::size_t kMaxSignatures = 16;
// Bound on payload_type (printable ASCII, no spaces).
inline constexpr std::size_t kMaxPayloadTypeBytes = 128;

struct SignatureEntry {
    std::string keyid;
    Signature sig;

    bool operator==(const SignatureEntry&) const = default;
};

struct Envelope {
    std::string payload_type;
    Bytes payload;
    std::vector<SignatureEntry> signatures;

    bool operator==(const Envelope&) const = default;
};

Bytes pre_auth_encoding(std::string_view type, ByteView payload);

// Builds an envelope signed by each key (one entry per key).
Envelope sign_envelope(std::string_view type, ByteView payload, std::span<const KeyPair> keys);
// Adds one more signature (for gathering signatures from several people). A no-op if `key`
// already signed this envelope.
void add_signature(Envelope& env, const KeyPair& key);

std::string serialize_envelope(const Envelope& env);  // compact JSON, one line
// Parses and bounds-checks an envelope (Errc::too_large over max_bytes, checked before parsing;
// Errc::malformed for bad JSON/base64/fields, duplicate or unknown keys, more than
// kMaxSignatures signatures). Does NOT verify signatures.
[[nodiscard]] Result<Envelope> parse_envelope(std::string_view json, std::size_t max_bytes);

// Verifies that `env.payload_type == expected_type` and that at least `threshold` distinct keys
// from `trusted` produced a valid signature. Each key counts once, however many entries carry
// its id; unknown key ids are ignored. Returns the payload bytes on success,
// Errc::bad_signature (or Errc::malformed for a type mismatch) otherwise. A threshold of 0 is a
// caller bug and fails with Errc::invalid_argument rather than accepting unsigned documents.
[[nodiscard]] Result<Bytes> verify_envelope(const Envelope& env, std::string_view expected_type,
                                            std::span<const PublicKey> trusted,
                                            std::size_t threshold = 1);

}  // namespace patchswarm::crypto
