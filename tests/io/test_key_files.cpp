// io/key_files: key files on disk and the SHA-256 of a file.
#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "crypto/crypto.hpp"
#include "io/key_files.hpp"
#include "support/process.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;
using namespace patchswarm::crypto;
using namespace patchswarm::io;

namespace {

using patchswarm::test::TempDir;

template <std::size_t N>
std::array<std::uint8_t, N> hex_array(std::string_view h) {
    auto b = from_hex(h);
    REQUIRE(b.has_value());
    REQUIRE(b->size() == N);
    std::array<std::uint8_t, N> out{};
    std::copy(b->begin(), b->end(), out.begin());
    return out;
}

void write_text(const fs::path& p, std::string_view text) {
    std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

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
