// Shared by the libFuzzer targets in this folder and by tests/test_fuzz_corpus.cpp, which
// compiles the same harnesses with GCC (PATCHSWARM_FUZZ_REPLAY defined) and replays the corpus
// and the regression inputs through them. See fuzz/README.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::fuzz {

// A broken invariant is a bug, whatever the input: under libFuzzer abort (it saves the input as
// a crash-* file); under the replay test throw, so Catch names the file that caused it.
[[noreturn]] inline void invariant_failed(std::string_view what, const char* file, int line) {
    const std::string message =
        std::string(file) + ":" + std::to_string(line) + ": invariant failed: " + std::string(what);
#ifdef PATCHSWARM_FUZZ_REPLAY
    throw std::logic_error(message);
#else
    std::fprintf(stderr, "%s\n", message.c_str());
    std::abort();
#endif
}

// An invariant of an accepted (or refused) input; evaluated in every build, unlike assert.
#define FUZZ_CHECK(cond) \
    ((cond) ? void(0) : ::patchswarm::fuzz::invariant_failed(#cond, __FILE__, __LINE__))
// Same, with a message built only on failure (e.g. the parser's error for a canonical form).
#define FUZZ_CHECK_MSG(cond, message) \
    ((cond) ? void(0) : ::patchswarm::fuzz::invariant_failed((message), __FILE__, __LINE__))

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

inline bool is_lower_hex(std::string_view s, std::size_t length) {
    if (s.size() != length) return false;
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

// `payload` as an envelope of `type` signed by `key` (for harnesses that sign mutated payloads).
inline std::string signed_envelope(std::string_view type, const crypto::Bytes& payload,
                                   const crypto::KeyPair& key,
                                   const crypto::KeyPair* co_signer = nullptr) {
    std::vector<crypto::KeyPair> keys = {key};
    if (co_signer) keys.push_back(*co_signer);
    return core::serialize_envelope(core::sign_envelope(type, payload, keys));
}

inline bool has_control_char(std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) return true;
    }
    return false;
}

// libsodium must be initialised before keys are derived; idempotent.
inline void ensure_init() {
    static const bool done = (crypto::init(), true);
    (void)done;
}

// Throwaway keys derived from fixed seeds (the seed is 32 copies of `n`). The harnesses trust
// them and fuzz/make_seeds.cpp signs the seed inputs with them. Never trust them anywhere else.
inline crypto::KeyPair throwaway_key(std::uint8_t n) {
    ensure_init();
    std::array<std::uint8_t, 32> seed{};
    seed.fill(n);
    return crypto::keypair_from_seed(seed);
}
inline const crypto::KeyPair& release_key() {
    static const crypto::KeyPair key = throwaway_key(1);
    return key;
}
inline const crypto::KeyPair& feed_key() {
    static const crypto::KeyPair key = throwaway_key(2);
    return key;
}
inline const crypto::KeyPair& device_key() {
    static const crypto::KeyPair key = throwaway_key(3);
    return key;
}
// Stands for an enrolment token's key (its public key is ca93ac17...).
inline const crypto::KeyPair& token_key() {
    static const crypto::KeyPair key = throwaway_key(4);
    return key;
}

// The two input forms of the targets for device-signed requests (report, enrolment): "P" and
// a payload, which is signed here as `type` with the throwaway device key (and `co_signer`, when
// given) so that mutations reach the decoder behind the signature check, or else the raw
// request body. `parse(body)`
// returns a Result whose value has a `device_key`; a refusal must satisfy `is_refusal(code)` and
// carry a message; an accepted value goes to `check(value)` and, when the harness signed it, to
// `bind(payload, value)`. Returns whether the parser accepted the input.
template <typename Parse, typename Check, typename Bind>
bool device_signed_one(const std::uint8_t* data, std::size_t size, std::string_view type,
                       Parse parse, bool (*is_refusal)(Errc), Check check, Bind bind,
                       const crypto::KeyPair* co_signer = nullptr) {
    ensure_init();
    const bool sign_payload = size > 0 && data[0] == 'P';
    std::string body;
    crypto::Bytes payload;
    if (sign_payload) {
        payload.assign(data + 1, data + size);
        body = signed_envelope(type, payload, device_key(), co_signer);
    } else {
        body.assign(as_text(data, size));
    }
    auto value = parse(body);
    if (!value) {
        FUZZ_CHECK(is_refusal(value.error().code) && !value.error().message.empty());
        return false;
    }
    check(*value);
    if (sign_payload) {
        FUZZ_CHECK(value->device_key == device_key().public_key);
        bind(payload, *value);
    }
    return true;
}

}  // namespace patchswarm::fuzz

// Each target defines `bool patchswarm::fuzz::<name>_one(const std::uint8_t*, std::size_t)`,
// returning whether the parser accepted the input (the replay test checks that every corpus
// holds at least one accepted input), and this entry point for libFuzzer.
#ifdef PATCHSWARM_FUZZ_REPLAY
#define PATCHSWARM_FUZZ_ENTRY(one)
#else
#define PATCHSWARM_FUZZ_ENTRY(one)                                                      \
    extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
        (void)::patchswarm::fuzz::one(data, size);                                      \
        return 0;                                                                       \
    }
#endif
