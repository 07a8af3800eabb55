#include "crypto/crypto.hpp"

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <utility>

#include "base/text.hpp"

namespace patchswarm::crypto {

namespace {

static_assert(sizeof(crypto_hash_sha256_state) <= 128, "Sha256Stream::state_ too small");
static_assert(alignof(crypto_hash_sha256_state) <= 64, "Sha256Stream::state_ under-aligned");
static_assert(crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_SECRETKEYBYTES == 64 &&
              crypto_sign_BYTES == 64 && crypto_sign_SEEDBYTES == kSeedBytes);

}  // namespace

void init() {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

// ---- encodings -------------------------------------------------------------------------------

std::string to_hex(ByteView bytes) {
    std::string out(bytes.size() * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), bytes.data(), bytes.size());
    out.pop_back();  // sodium writes a terminating NUL
    return out;
}

Result<Bytes> from_hex(std::string_view hex) {
    // Checked here rather than by sodium_hex2bin, which also accepts uppercase.
    if (hex.size() % 2 != 0 || !is_lower_hex(hex, hex.size())) {
        return fail(Errc::malformed, "invalid hex: expected an even number of lowercase digits");
    }
    if (hex.empty()) return Bytes{};  // sodium's output pointer must not be null
    Bytes out(hex.size() / 2);
    std::size_t len = 0;
    if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, nullptr) !=
            0 ||
        len != out.size()) {
        return fail(Errc::malformed, "invalid hex");
    }
    return out;
}

std::string to_base64(ByteView bytes) {
    constexpr int kVariant = sodium_base64_VARIANT_ORIGINAL;
    std::string out(sodium_base64_ENCODED_LEN(bytes.size(), kVariant), '\0');
    sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), kVariant);
    out.pop_back();  // terminating NUL
    return out;
}

Result<Bytes> from_base64(std::string_view b64) {
    // The padded form always has a multiple of 4 characters; sodium checks the rest (alphabet,
    // padding, zero trailing bits) when given no characters to ignore.
    if (b64.size() % 4 != 0) return fail(Errc::malformed, "invalid base64: length");
    // Checked here too: Debian 12's libsodium (1.0.18) reads the input as signed char and
    // decodes every byte >= 0x80 as '/', so "é" would stand for "//" (found by fuzz_envelope).
    const bool alphabet_only = std::all_of(b64.begin(), b64.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/' || c == '=';
    });
    if (!alphabet_only) return fail(Errc::malformed, "invalid base64: character outside alphabet");
    if (b64.empty()) return Bytes{};  // sodium's output pointer must not be null
    Bytes out(b64.size() / 4 * 3);
    std::size_t len = 0;
    const char* end = nullptr;
    if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b64.data() + b64.size()) {
        return fail(Errc::malformed, "invalid base64");
    }
    out.resize(len);
    return out;
}

// ---- hashing ---------------------------------------------------------------------------------

Sha256 sha256(ByteView bytes) {
    Sha256 out{};
    crypto_hash_sha256(out.data(), bytes.data(), bytes.size());
    return out;
}

std::string sha256_hex(ByteView bytes) {
    return to_hex(sha256(bytes));
}

Sha256Stream::Sha256Stream() {
    crypto_hash_sha256_init(reinterpret_cast<crypto_hash_sha256_state*>(state_.data()));
}

void Sha256Stream::update(ByteView bytes) {
    crypto_hash_sha256_update(reinterpret_cast<crypto_hash_sha256_state*>(state_.data()),
                              bytes.data(), bytes.size());
}

Sha256 Sha256Stream::finish() {
    Sha256 out{};
    crypto_hash_sha256_final(reinterpret_cast<crypto_hash_sha256_state*>(state_.data()),
                             out.data());
    return out;
}

// ---- Ed25519 ---------------------------------------------------------------------------------

Bytes random_bytes(std::size_t n) {
    Bytes out(n);
    randombytes_buf(out.data(), out.size());
    return out;
}

bool equal_constant_time(ByteView a, ByteView b) {
    return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void wipe(std::span<std::uint8_t> bytes) {
    sodium_memzero(bytes.data(), bytes.size());
}

void wipe(std::span<char> bytes) {
    sodium_memzero(bytes.data(), bytes.size());
}

KeyPair generate_keypair() {
    KeyPair kp{};
    crypto_sign_keypair(kp.public_key.data(), kp.secret_key.data());
    return kp;
}

KeyPair keypair_from_seed(std::span<const std::uint8_t, 32> seed) {
    KeyPair kp{};
    crypto_sign_seed_keypair(kp.public_key.data(), kp.secret_key.data(), seed.data());
    return kp;
}

std::string key_id(const PublicKey& key) {
    return sha256_hex(key);
}

Signature sign_detached(ByteView message, const SecretKey& key) {
    Signature sig{};
    crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), key.data());
    return sig;
}

bool verify_detached(ByteView message, const Signature& sig, const PublicKey& key) {
    return crypto_sign_verify_detached(sig.data(), message.data(), message.size(), key.data()) == 0;
}

}  // namespace patchswarm::crypto
