#include "core/envelope.hpp"

#include <algorithm>
#include <optional>

#include "core/json_strict.hpp"

namespace patchswarm::core {

namespace {

using core::json_strict::Json;
using namespace crypto;

bool is_valid_payload_type(std::string_view type) {
    if (type.empty() || type.size() > kMaxPayloadTypeBytes) return false;
    // Printable ASCII only: in particular no NUL, which would make the pre-auth encoding
    // ambiguous.
    return std::all_of(type.begin(), type.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

SignatureEntry read_signature(const Json& v, const std::string& where, std::optional<Error>& err) {
    core::json_strict::ObjectReader r(v, where, err);
    r.allow_only({"keyid", "sig"});
    SignatureEntry entry{r.string("keyid"), {}};
    const std::string sig_b64 = r.string("sig");
    if (!r.ok()) return entry;
    if (!core::json_strict::is_lower_hex(entry.keyid, 64)) {
        r.fail_at(r.field("keyid"), Errc::malformed, "expected 64 lowercase hex digits");
        return entry;
    }
    auto sig = from_base64(sig_b64);
    if (!sig || sig->size() != entry.sig.size()) {
        r.fail_at(r.field("sig"), Errc::malformed, "expected base64 of 64 bytes");
        return entry;
    }
    std::copy(sig->begin(), sig->end(), entry.sig.begin());
    return entry;
}

}  // namespace

// ---- signed envelope -------------------------------------------------------------------------

Bytes pre_auth_encoding(std::string_view type, ByteView payload) {
    // The NUL separators and the explicit length make the encoding injective for types without
    // NUL (parse_envelope refuses those): no (type, payload) pair yields another pair's bytes.
    const std::string header = std::string("patchswarm-v1\0", 14) + std::string(type) + '\0' +
                               std::to_string(payload.size()) + '\0';
    // Sized up front and copied, rather than insert() after reserve(), which trips a GCC 12
    // -Wstringop-overflow false positive.
    Bytes out(header.size() + payload.size());
    std::copy(header.begin(), header.end(), out.begin());
    std::copy(payload.begin(), payload.end(),
              out.begin() + static_cast<std::ptrdiff_t>(header.size()));
    return out;
}

Envelope sign_envelope(std::string_view type, ByteView payload, std::span<const KeyPair> keys) {
    Envelope env{std::string(type), Bytes(payload.begin(), payload.end()), {}};
    for (const auto& key : keys) add_signature(env, key);
    return env;
}

void add_signature(Envelope& env, const KeyPair& key) {
    std::string id = key_id(key.public_key);
    const bool already = std::any_of(env.signatures.begin(), env.signatures.end(),
                                     [&](const SignatureEntry& e) { return e.keyid == id; });
    if (already) return;
    const Bytes pae = pre_auth_encoding(env.payload_type, env.payload);
    env.signatures.push_back({std::move(id), sign_detached(pae, key.secret_key)});
}

std::string serialize_envelope(const Envelope& env) {
    Json j;
    j["payload_type"] = env.payload_type;
    j["payload"] = to_base64(env.payload);
    j["signatures"] = Json::array();
    for (const auto& s : env.signatures) {
        Json entry;
        entry["keyid"] = s.keyid;
        entry["sig"] = to_base64(s.sig);
        j["signatures"].push_back(std::move(entry));
    }
    return core::json_strict::dump(j);
}

Result<Envelope> parse_envelope(std::string_view json, std::size_t max_bytes) {
    if (json.size() > max_bytes) {
        return fail(Errc::too_large,
                    "envelope larger than " + std::to_string(max_bytes) + " bytes");
    }
    auto doc = core::json_strict::parse(json, "envelope");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    core::json_strict::ObjectReader r(*doc, "envelope", err);
    r.allow_only({"payload_type", "payload", "signatures"});
    Envelope env;
    env.payload_type = r.string("payload_type");
    const std::string payload_b64 = r.string("payload");
    const Json* sigs = r.array("signatures", kMaxSignatures);
    if (err && err->code == Errc::too_large) err->code = Errc::malformed;  // as documented
    if (err) return std::unexpected(*err);
    if (!is_valid_payload_type(env.payload_type)) {
        return fail(Errc::malformed, "envelope.payload_type: not a valid type");
    }
    auto payload = from_base64(payload_b64);
    if (!payload) return fail(Errc::malformed, "envelope.payload: invalid base64");
    env.payload = std::move(*payload);
    for (std::size_t i = 0; i < sigs->size(); ++i) {
        const std::string where = "envelope.signatures[" + std::to_string(i) + "]";
        env.signatures.push_back(read_signature((*sigs)[i], where, err));
        if (err) return std::unexpected(*err);
    }
    return env;
}

Result<Bytes> verify_envelope(const Envelope& env, std::string_view expected_type,
                              std::span<const PublicKey> trusted, std::size_t threshold) {
    if (env.payload_type != expected_type) {
        return fail(Errc::malformed, "envelope carries \"" + env.payload_type + "\", expected \"" +
                                         std::string(expected_type) + "\"");
    }
    if (threshold == 0) return fail(Errc::invalid_argument, "signature threshold must be >= 1");
    if (env.signatures.size() > kMaxSignatures) {
        return fail(Errc::malformed, "envelope has more than 16 signatures");
    }
    // The same trusted key listed twice must not count twice either.
    std::vector<PublicKey> keys(trusted.begin(), trusted.end());
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());

    const Bytes pae = pre_auth_encoding(env.payload_type, env.payload);
    std::size_t valid = 0;
    for (const auto& key : keys) {
        const std::string id = key_id(key);
        // Each key counts at most once, however many entries claim its id.
        const bool signed_by_key = std::any_of(
            env.signatures.begin(), env.signatures.end(),
            [&](const auto& e) { return e.keyid == id && verify_detached(pae, e.sig, key); });
        if (signed_by_key) ++valid;
    }
    if (valid < threshold) {
        return fail(Errc::bad_signature, "valid signatures from " + std::to_string(valid) +
                                             " trusted key(s), " + std::to_string(threshold) +
                                             " required");
    }
    return env.payload;
}

}  // namespace patchswarm::core
