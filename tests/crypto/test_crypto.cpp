// crypto/: encodings, hashes and Ed25519 against known answers.
#include <catch2/catch.hpp>
#include <string>

#include "crypto/crypto.hpp"

using namespace patchswarm;
using namespace patchswarm::crypto;

namespace {

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
