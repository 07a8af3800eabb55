// core/envelope: signed envelopes, thresholds and strict parsing.
#include <catch2/catch.hpp>
#include <string>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"

using namespace patchswarm;
using namespace patchswarm::crypto;
using namespace patchswarm::core;

namespace {

constexpr std::string_view kType = payload_type::manifest;

}  // namespace

TEST_CASE("the pre-auth encoding is prefix, type, decimal length and payload, NUL-separated",
          "[crypto]") {
    const Bytes pae = pre_auth_encoding("t/x", as_bytes("hello"));
    const std::string expected(
        "patchswarm-v1\0t/x\0"
        "5\0hello",
        25);
    CHECK(std::string(pae.begin(), pae.end()) == expected);
}

TEST_CASE("a signed envelope verifies and survives serialisation", "[crypto]") {
    const KeyPair kp = generate_keypair();
    const std::string payload = R"({"format":1})";
    const Envelope env = sign_envelope(kType, as_bytes(payload), std::span(&kp, 1));
    REQUIRE(env.signatures.size() == 1);
    CHECK(env.signatures[0].keyid == key_id(kp.public_key));

    const std::string text = serialize_envelope(env);
    CHECK(text.find('\n') == std::string::npos);
    auto parsed = parse_envelope(text, 4096);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == env);

    const PublicKey trusted[] = {kp.public_key};
    auto verified = verify_envelope(*parsed, kType, trusted);
    REQUIRE(verified.has_value());
    CHECK(std::string(verified->begin(), verified->end()) == payload);
}

TEST_CASE("an envelope signed by an untrusted key is refused", "[crypto]") {
    const KeyPair signer = generate_keypair();
    const KeyPair pinned = generate_keypair();
    const Envelope env = sign_envelope(kType, as_bytes("doc"), std::span(&signer, 1));
    const PublicKey trusted[] = {pinned.public_key};
    auto r = verify_envelope(env, kType, trusted);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::bad_signature);

    // Claiming the pinned key's id does not help a signature made with another key.
    Envelope forged = env;
    forged.signatures[0].keyid = key_id(pinned.public_key);
    r = verify_envelope(forged, kType, trusted);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::bad_signature);

    Envelope unsigned_env = env;
    unsigned_env.signatures.clear();
    CHECK(verify_envelope(unsigned_env, kType, trusted).error().code == Errc::bad_signature);
}

TEST_CASE("flipping any payload byte invalidates the signature", "[crypto]") {
    const KeyPair kp = generate_keypair();
    const Envelope env = sign_envelope(kType, as_bytes("release MS08-067"), std::span(&kp, 1));
    const PublicKey trusted[] = {kp.public_key};
    for (std::size_t i = 0; i < env.payload.size(); ++i) {
        Envelope tampered = env;
        tampered.payload[i] ^= 0x01;
        auto r = verify_envelope(tampered, kType, trusted);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::bad_signature);
    }
    Envelope longer = env;
    longer.payload.push_back(' ');
    CHECK_FALSE(verify_envelope(longer, kType, trusted).has_value());
}

TEST_CASE("a signature for one payload type never verifies as another", "[crypto]") {
    const KeyPair kp = generate_keypair();
    const PublicKey trusted[] = {kp.public_key};
    const Envelope feed = sign_envelope(payload_type::feed, as_bytes("{}"), std::span(&kp, 1));

    // Asked for a manifest, given a feed: refused on the type.
    auto wrong_type = verify_envelope(feed, payload_type::manifest, trusted);
    REQUIRE_FALSE(wrong_type.has_value());
    CHECK(wrong_type.error().code == Errc::malformed);

    // Relabelled as a manifest: the type is right but the signature covers "feed".
    Envelope relabelled = feed;
    relabelled.payload_type = std::string(payload_type::manifest);
    auto r = verify_envelope(relabelled, payload_type::manifest, trusted);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::bad_signature);
}

TEST_CASE("a threshold counts each distinct trusted key once", "[crypto]") {
    const KeyPair a = generate_keypair();
    const KeyPair b = generate_keypair();
    const KeyPair c = generate_keypair();
    const PublicKey trusted[] = {a.public_key, b.public_key, c.public_key};

    Envelope env = sign_envelope(kType, as_bytes("doc"), std::span(&a, 1));
    // Two entries carrying A's valid signature are still one key.
    env.signatures.push_back(env.signatures[0]);
    auto r = verify_envelope(env, kType, trusted, 2);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::bad_signature);

    // Signing again with A is a no-op, not a second vote.
    add_signature(env, a);
    CHECK(env.signatures.size() == 2);
    CHECK_FALSE(verify_envelope(env, kType, trusted, 2).has_value());

    // A trusted list that names A twice does not make A count twice either.
    const PublicKey a_twice[] = {a.public_key, a.public_key};
    CHECK_FALSE(verify_envelope(env, kType, a_twice, 2).has_value());

    add_signature(env, b);
    CHECK(verify_envelope(env, kType, trusted, 2).has_value());
    CHECK_FALSE(verify_envelope(env, kType, trusted, 3).has_value());
    add_signature(env, c);
    CHECK(verify_envelope(env, kType, trusted, 3).has_value());

    // Signatures from keys outside the trusted set are ignored, not counted.
    const KeyPair outsider = generate_keypair();
    Envelope mixed = sign_envelope(kType, as_bytes("doc"), std::span(&a, 1));
    add_signature(mixed, outsider);
    CHECK_FALSE(verify_envelope(mixed, kType, trusted, 2).has_value());
}

TEST_CASE("a threshold of zero is a caller error, not an open door", "[crypto]") {
    const KeyPair kp = generate_keypair();
    const PublicKey trusted[] = {kp.public_key};
    Envelope env{std::string(kType), Bytes{'x'}, {}};
    auto r = verify_envelope(env, kType, trusted, 0);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::invalid_argument);
}

TEST_CASE("parse_envelope refuses malformed and oversized envelopes", "[crypto]") {
    const KeyPair kp = generate_keypair();
    const Envelope good = sign_envelope(kType, as_bytes("doc"), std::span(&kp, 1));
    const std::string good_text = serialize_envelope(good);
    const std::string keyid = good.signatures[0].keyid;
    const std::string sig = to_base64(good.signatures[0].sig);
    const std::string type = std::string(kType);

    Envelope seventeen = good;
    seventeen.signatures.assign(kMaxSignatures + 1, good.signatures[0]);
    Envelope sixteen = good;
    sixteen.signatures.assign(kMaxSignatures, good.signatures[0]);
    REQUIRE(parse_envelope(serialize_envelope(sixteen), 1 << 16).has_value());

    auto sig_entry = [&](const std::string& id, const std::string& s) {
        return R"({"payload_type":")" + type + R"(","payload":"ZG9j","signatures":[{"keyid":")" +
               id + R"(","sig":")" + s + R"("}]})";
    };
    struct Row {
        const char* what;
        std::string text;
        Errc code;
    };
    const Row rows[] = {
        {"more than 16 signatures", serialize_envelope(seventeen), Errc::malformed},
        {"not JSON", "payload", Errc::malformed},
        {"not an object", "[]", Errc::malformed},
        {"payload not base64",
         R"({"payload_type":")" + type + R"(","payload":"ZG9j!","signatures":[]})",
         Errc::malformed},
        {"payload missing", R"({"payload_type":")" + type + R"(","signatures":[]})",
         Errc::malformed},
        {"payload type empty", R"({"payload_type":"","payload":"ZG9j","signatures":[]})",
         Errc::malformed},
        {"payload type with NUL", R"({"payload_type":"a\u0000b","payload":"","signatures":[]})",
         Errc::malformed},
        {"signatures not an array",
         R"({"payload_type":")" + type + R"(","payload":"ZG9j","signatures":{}})", Errc::malformed},
        {"signature too short", sig_entry(keyid, to_base64(as_bytes("short"))), Errc::malformed},
        {"key id uppercase", sig_entry(std::string(64, 'A'), sig), Errc::malformed},
        {"key id short", sig_entry(keyid.substr(2), sig), Errc::malformed},
        {"unknown field",
         R"({"payload_type":")" + type + R"(","payload":"ZG9j","signatures":[],"x":1})",
         Errc::malformed},
        {"duplicate key",
         R"({"payload_type":")" + type +
             R"(","payload":"ZG9j","payload":"ZXZpbA==","signatures":[]})",
         Errc::malformed},
        // nlohmann stops at a NUL: without the check this parsed as `good` (fuzz_envelope).
        {"bytes after a NUL", good_text + std::string("\0garbage", 8), Errc::malformed},
        {"NUL alone after the document", good_text + std::string(1, '\0'), Errc::malformed},
    };
    for (const auto& row : rows) {
        INFO(row.what);
        auto r = parse_envelope(row.text, 1 << 16);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == row.code);
        // Users see these messages: nlohmann's exception tag is not for them.
        CHECK(r.error().message.find("json.exception") == std::string::npos);
    }
    auto syntax = parse_envelope("{{{", 1 << 16);
    REQUIRE_FALSE(syntax.has_value());
    CHECK(syntax.error().message.find("parse error at line 1, column 2") != std::string::npos);

    auto over = parse_envelope(good_text, good_text.size() - 1);
    REQUIRE_FALSE(over.has_value());
    CHECK(over.error().code == Errc::too_large);
    CHECK(parse_envelope(good_text, good_text.size()).has_value());
}
