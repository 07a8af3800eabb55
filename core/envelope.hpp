// The signed envelope that every patchswarm document travels in: pure parsing, signing and
// verification over exact bytes (crypto/ provides the primitives). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::core {

using crypto::Bytes;
using crypto::ByteView;
using crypto::KeyPair;
using crypto::PublicKey;
using crypto::Signature;

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

}  // namespace patchswarm::core
