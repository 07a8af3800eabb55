// libFuzzer target for core::parse_envelope (and the checks an endpoint runs right after it).
// Input: an envelope JSON document. Beyond "no crash":
// - the strict encoders are canonical: a string from_base64/from_hex accepts is exactly what
//   to_base64/to_hex give back (the input itself is also tried as base64 and as hex);
// - an accepted envelope is within its bounds, is pure ASCII after an optional byte order mark
//   (its strings are a printable type, base64 and hex), and re-serialises to an equal envelope;
// - verify_envelope counts each key once (the same key listed twice never meets threshold 2),
//   refuses threshold 0, and two keys meet threshold 2 exactly when each verifies alone;
// - the payload is handed to the parser its type names, as the endpoint does after verifying.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/envelope.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
#include "crypto/crypto.hpp"
#include "fuzz/fuzz_support.hpp"

namespace patchswarm::fuzz {

namespace envelope_detail {

constexpr std::size_t kMaxEnvelopeBytes = 1 << 20;

void check_encodings(std::string_view text) {
    if (auto bytes = crypto::from_base64(text)) FUZZ_CHECK(crypto::to_base64(*bytes) == text);
    if (auto bytes = crypto::from_hex(text)) FUZZ_CHECK(crypto::to_hex(*bytes) == text);
}

void check_bounds(const core::Envelope& env) {
    FUZZ_CHECK(!env.payload_type.empty() && env.payload_type.size() <= core::kMaxPayloadTypeBytes);
    for (char c : env.payload_type) FUZZ_CHECK(c > 0x20 && c < 0x7f);
    FUZZ_CHECK(env.signatures.size() <= core::kMaxSignatures);
    for (const auto& s : env.signatures) FUZZ_CHECK(is_lower_hex(s.keyid, 64));
}

bool verifies(const core::Envelope& env, const crypto::PublicKey& key) {
    const crypto::PublicKey trusted[] = {key};
    auto payload = core::verify_envelope(env, env.payload_type, trusted);
    if (payload) FUZZ_CHECK(*payload == env.payload);
    return payload.has_value();
}

void check_verification(const core::Envelope& env) {
    const crypto::PublicKey a = release_key().public_key;
    const crypto::PublicKey b = feed_key().public_key;
    const bool by_a = verifies(env, a);
    const bool by_b = verifies(env, b);
    const crypto::PublicKey twice[] = {a, a};
    FUZZ_CHECK(!core::verify_envelope(env, env.payload_type, twice, 2).has_value());
    const crypto::PublicKey both[] = {a, b};
    FUZZ_CHECK(core::verify_envelope(env, env.payload_type, both, 2).has_value() == (by_a && by_b));
    FUZZ_CHECK(!core::verify_envelope(env, env.payload_type, both, 0).has_value());
    // A signature never carries over to another document type.
    if (by_a) {
        const std::string other = env.payload_type == core::payload_type::manifest
                                      ? std::string(core::payload_type::feed)
                                      : std::string(core::payload_type::manifest);
        core::Envelope retyped = env;
        retyped.payload_type = other;
        FUZZ_CHECK(!verifies(retyped, a));
    }
}

void parse_payload(const core::Envelope& env) {
    const std::string_view payload(reinterpret_cast<const char*>(env.payload.data()),
                                   env.payload.size());
    if (env.payload_type == core::payload_type::manifest) {
        (void)core::parse_manifest(payload);
    } else if (env.payload_type == core::payload_type::feed) {
        (void)core::parse_feed(payload);
    } else if (env.payload_type == core::payload_type::root) {
        (void)core::parse_root(payload);
    }
}

}  // namespace envelope_detail

bool envelope_one(const std::uint8_t* data, std::size_t size) {
    using namespace envelope_detail;
    ensure_init();
    const std::string_view text = as_text(data, size);
    check_encodings(text);
    auto env = core::parse_envelope(text, kMaxEnvelopeBytes);
    if (!env) {
        FUZZ_CHECK(env.error().code == Errc::malformed || env.error().code == Errc::too_large);
        FUZZ_CHECK(!env.error().message.empty());
        return false;
    }
    check_bounds(*env);
    // (nlohmann skips a leading UTF-8 byte order mark; that is the one non-ASCII prefix.)
    const std::string_view body = text.starts_with("\xEF\xBB\xBF") ? text.substr(3) : text;
    for (char c : body) FUZZ_CHECK(static_cast<unsigned char>(c) < 0x80);

    const std::string canonical = core::serialize_envelope(*env);
    auto again = core::parse_envelope(canonical, canonical.size());
    FUZZ_CHECK_MSG(again.has_value(), "canonical envelope refused: " + again.error().message);
    FUZZ_CHECK(*again == *env);
    FUZZ_CHECK(core::serialize_envelope(*again) == canonical);

    check_verification(*env);
    parse_payload(*env);
    return true;
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(envelope_one)
