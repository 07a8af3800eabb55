#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "crypto/crypto.hpp"
#include "support/process.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;
using namespace patchswarm::crypto;

namespace {

using patchswarm::test::TempDir;

Bytes hex(std::string_view h) {
    auto b = from_hex(h);
    REQUIRE(b.has_value());
    return *b;
}

template <std::size_t N>
std::array<std::uint8_t, N> hex_array(std::string_view h) {
    const Bytes b = hex(h);
    REQUIRE(b.size() == N);
    std::array<std::uint8_t, N> out{};
    std::copy(b.begin(), b.end(), out.begin());
    return out;
}

void write_text(const fs::path& p, std::string_view text) {
    std::ofstream(p, std::ios::binary) << text;
}

constexpr std::string_view kType = payload_type::manifest;

}  // namespace

TEST_CASE("Ed25519 keys and signatures match the RFC 8032 section 7.1 test vectors", "[crypto]") {
    struct Vector {
        const char* name;
        std::string_view seed, public_key, message, signature;
    };
    // RFC 8032 section 7.1, TEST 1 to TEST 3 (SECRET KEY is the 32-byte seed).
    const Vector vectors[] = {
        {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e397"
         "01cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f361"
         "3d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
        {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f76"
         "0984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    };
    for (const auto& v : vectors) {
        INFO(v.name);
        const auto seed = hex_array<32>(v.seed);
        const KeyPair kp = keypair_from_seed(seed);
        CHECK(to_hex(kp.public_key) == v.public_key);
        // libsodium's secret key layout is seed || public key.
        CHECK(to_hex(kp.secret_key) == std::string(v.seed) + std::string(v.public_key));

        const Bytes message = hex(v.message);
        const Signature sig = sign_detached(message, kp.secret_key);
        CHECK(to_hex(sig) == v.signature);
        CHECK(verify_detached(message, hex_array<64>(v.signature), kp.public_key));
    }
}

TEST_CASE("SHA-256 matches the FIPS 180 known answers", "[crypto]") {
    CHECK(sha256_hex(as_bytes("abc")) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex(as_bytes("")) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(to_hex(sha256(as_bytes("abc"))) == sha256_hex(as_bytes("abc")));
}

TEST_CASE("streamed SHA-256 equals the one-shot digest however the input is split", "[crypto]") {
    // One million 'a' (FIPS 180-2 appendix B.3), fed in chunks that straddle block boundaries.
    const std::string million(1'000'000, 'a');
    Sha256Stream stream;
    std::size_t chunk = 1;
    for (std::size_t off = 0; off < million.size(); off += chunk, chunk = chunk * 3 % 1000 + 1) {
        stream.update(as_bytes(std::string_view(million).substr(off, chunk)));
    }
    const Sha256 digest = stream.finish();
    CHECK(to_hex(digest) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK(digest == sha256(as_bytes(million)));

    Sha256Stream empty;
    CHECK(to_hex(empty.finish()) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("sha256_file hashes a file and refuses one larger than the bound", "[crypto]") {
    TempDir dir;
    const fs::path file = dir.path() / "payload.bin";
    write_text(file, "abc");

    auto digest = sha256_file(file, 3);
    REQUIRE(digest.has_value());
    CHECK(to_hex(*digest) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    auto over = sha256_file(file, 2);
    REQUIRE_FALSE(over.has_value());
    CHECK(over.error().code == Errc::too_large);

    auto missing = sha256_file(dir.path() / "absent", 100);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == Errc::not_found);
}

TEST_CASE("hex round-trips and rejects odd length, non-hex and uppercase digits", "[crypto]") {
    Bytes all(256);
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint8_t>(i);
    const std::string text = to_hex(all);
    CHECK(text.substr(0, 8) == "00010203");
    CHECK(text.substr(text.size() - 4) == "feff");
    CHECK(from_hex(text) == all);
    CHECK(from_hex("")->empty());

    for (std::string_view bad : {"0", "abc", "0g", "AB", "aB", " ab", "ab ", "ab\n", "0x00"}) {
        INFO(bad);
        auto r = from_hex(bad);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
}

TEST_CASE("base64 round-trips and accepts only the canonical padded form", "[crypto]") {
    Bytes data;
    for (std::size_t len = 0; len < 40; ++len) {
        INFO(len);
        const std::string text = to_base64(data);
        CHECK(text.size() % 4 == 0);
        CHECK(from_base64(text) == data);
        data.push_back(static_cast<std::uint8_t>(len * 37 + 11));
    }
    CHECK(to_base64(as_bytes("foob")) == "Zm9vYg==");
    CHECK(to_base64(as_bytes("\xfb\xff")) == "+/8=");

    const std::string_view rejects[] = {
        "Zm9vYg",      // padding missing
        "Zm9vYg=",     // padding short
        "Zm9vYh==",    // non-zero bits after the last byte: a second encoding of "foob"
        "Zm9v\nYg==",  // whitespace
        " Zm9v",       //
        "Zm9v====",    // padding only
        "Zg==Zm9v",    // padding in the middle
        "Zm-_",        // URL-safe alphabet
        "Zm9*",        // not base64 at all
    };
    for (auto bad : rejects) {
        INFO(bad);
        auto r = from_base64(bad);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
}

TEST_CASE("a key id is the hex SHA-256 of the public key bytes", "[crypto]") {
    const KeyPair kp = generate_keypair();
    CHECK(key_id(kp.public_key) == sha256_hex(kp.public_key));
    CHECK(key_id(kp.public_key).size() == 64);
}

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
    }

    auto over = parse_envelope(good_text, good_text.size() - 1);
    REQUIRE_FALSE(over.has_value());
    CHECK(over.error().code == Errc::too_large);
    CHECK(parse_envelope(good_text, good_text.size()).has_value());
}

TEST_CASE("key files are written once and load back the same key", "[crypto]") {
    TempDir dir;
    const fs::path base = dir.path() / "release";
    const KeyPair kp = generate_keypair();
    REQUIRE(write_keypair(base, kp).has_value());

    const auto mode = fs::status(dir.path() / "release.key").permissions();
    CHECK(mode == (fs::perms::owner_read | fs::perms::owner_write));

    auto loaded = load_secret_key(dir.path() / "release.key");
    REQUIRE(loaded.has_value());
    CHECK(loaded->public_key == kp.public_key);
    CHECK(loaded->secret_key == kp.secret_key);

    auto pub = load_public_key(dir.path() / "release.pub");
    REQUIRE(pub.has_value());
    CHECK(*pub == kp.public_key);

    // Never overwrite: a second key pair would orphan everything signed with the first.
    auto again = write_keypair(base, generate_keypair());
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().code == Errc::already_exists);
    CHECK(load_secret_key(dir.path() / "release.key")->secret_key == kp.secret_key);

    // An existing .pub alone also stops it, and no .key is left behind.
    write_text(dir.path() / "other.pub", "x");
    auto blocked = write_keypair(dir.path() / "other", kp);
    REQUIRE_FALSE(blocked.has_value());
    CHECK(blocked.error().code == Errc::already_exists);
    CHECK_FALSE(fs::exists(dir.path() / "other.key"));
}

TEST_CASE("a secret key file readable or writable by group or others is refused", "[crypto]") {
    TempDir dir;
    const fs::path key = dir.path() / "device.key";
    REQUIRE(write_keypair(dir.path() / "device", generate_keypair()).has_value());

    for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0610}) {
        INFO(mode);
        REQUIRE(::chmod(key.c_str(), mode) == 0);
        auto r = load_secret_key(key);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::permission);
    }
    REQUIRE(::chmod(key.c_str(), 0400) == 0);
    CHECK(load_secret_key(key).has_value());
}

TEST_CASE("key files with the wrong content are refused", "[crypto]") {
    TempDir dir;
    const KeyPair a = keypair_from_seed(hex_array<32>(std::string(64, '1')));
    const KeyPair b = keypair_from_seed(hex_array<32>(std::string(64, '2')));
    const std::string seed_a = std::string(64, '1');

    auto secret_file = [&](std::string_view name, const std::string& content) {
        const fs::path p = dir.path() / name;
        write_text(p, content);
        REQUIRE(::chmod(p.c_str(), 0600) == 0);
        return p;
    };
    const fs::path good =
        secret_file("good.key", R"({"type":"ed25519-secret","seed":")" + seed_a +
                                    R"(","public":")" + to_hex(a.public_key) + R"("})");
    CHECK(load_secret_key(good).has_value());

    const fs::path mismatched =
        secret_file("mismatched.key", R"({"type":"ed25519-secret","seed":")" + seed_a +
                                          R"(","public":")" + to_hex(b.public_key) + R"("})");
    const fs::path wrong_type =
        secret_file("wrong_type.key", R"({"type":"ed25519-public","seed":")" + seed_a +
                                          R"(","public":")" + to_hex(a.public_key) + R"("})");
    const fs::path short_seed =
        secret_file("short_seed.key", R"({"type":"ed25519-secret","seed":"1111","public":")" +
                                          to_hex(a.public_key) + R"("})");
    for (const auto& p : {mismatched, wrong_type, short_seed}) {
        INFO(p);
        auto r = load_secret_key(p);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
    CHECK(load_secret_key(dir.path() / "absent.key").error().code == Errc::not_found);

    const std::string pub = to_hex(a.public_key);
    CHECK(parse_public_key(R"({"type":"ed25519-public","public":")" + pub + "\"}").has_value());
    CHECK_FALSE(parse_public_key(R"({"type":"ed25519-public","public":")" + pub + R"(","keyid":")" +
                                 key_id(b.public_key) + "\"}")
                    .has_value());
    CHECK_FALSE(
        parse_public_key(R"({"type":"ed25519-secret","public":")" + pub + "\"}").has_value());
    CHECK_FALSE(parse_public_key(R"({"type":"ed25519-public","public":")" + pub.substr(2) + "\"}")
                    .has_value());
}
