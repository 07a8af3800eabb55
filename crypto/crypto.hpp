// The cryptographic primitives, over libsodium: encodings, random bytes, SHA-256 and Ed25519.
// The signed envelope built from them is core/envelope.hpp; key files are io/key_files.hpp.
//
// All functions are thread-safe once init() has returned. Nothing here touches the network, the
// filesystem or the clock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

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
// Overwrites `bytes` with zeros in a way the compiler may not optimise away (for secrets).
void wipe(std::span<std::uint8_t> bytes);
void wipe(std::span<char> bytes);

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

// ---- Ed25519 ---------------------------------------------------------------------------------
using PublicKey = std::array<std::uint8_t, 32>;
using SecretKey = std::array<std::uint8_t, 64>;  // libsodium layout: seed || public key
using Signature = std::array<std::uint8_t, 64>;
inline constexpr std::size_t kSeedBytes = 32;  // the first half of a SecretKey

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

}  // namespace patchswarm::crypto
