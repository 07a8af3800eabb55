#include "crypto/crypto.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <utility>

#include "common/json_strict.hpp"
#include "common/posix_io.hpp"

namespace patchswarm::crypto {

namespace {

using json_strict::Json;
using posix::errno_error;
using posix::Fd;
using posix::write_all;

static_assert(sizeof(crypto_hash_sha256_state) <= 128, "Sha256Stream::state_ too small");
static_assert(alignof(crypto_hash_sha256_state) <= 64, "Sha256Stream::state_ under-aligned");
static_assert(crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_SECRETKEYBYTES == 64 &&
              crypto_sign_BYTES == 64 && crypto_sign_SEEDBYTES == 32);

// Key files are a few hundred bytes; anything larger is not a key file.
constexpr std::size_t kMaxKeyFileBytes = 4096;

Result<std::string> read_small_file(int fd, const std::filesystem::path& path) {
    std::string content;
    auto r = posix::read_all(fd, path, kMaxKeyFileBytes, [&](ByteView chunk) {
        content.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    });
    if (!r) return std::unexpected(r.error());
    return content;
}

// Creates `path` (never replacing an existing file or following a symlink planted there),
// writes, and fsyncs it.
Result<void> write_new_file(const std::filesystem::path& path, std::string_view data, mode_t mode) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (fd.get() < 0) return std::unexpected(errno_error("cannot create", path, errno));
    // The umask can only remove bits; fchmod makes the mode exactly what was asked.
    if (::fchmod(fd.get(), mode) != 0) return std::unexpected(errno_error("chmod", path, errno));
    if (auto r = write_all(fd.get(), path, data); !r) return r;
    if (::fsync(fd.get()) != 0) return std::unexpected(errno_error("fsync", path, errno));
    if (fd.close() != 0) return std::unexpected(errno_error("close", path, errno));
    return {};
}

void fsync_parent_dir(const std::filesystem::path& path) {
    auto dir = path.parent_path();
    if (dir.empty()) dir = ".";
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    // Best effort: the files themselves are already durable, only the names might be lost.
    if (fd.get() >= 0) ::fsync(fd.get());
}

std::filesystem::path with_suffix(const std::filesystem::path& base, std::string_view suffix) {
    auto p = base;
    p += suffix;
    return p;
}

template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> fixed_from_hex(std::string_view hex) {
    auto bytes = from_hex(hex);
    if (!bytes || bytes->size() != N) return std::nullopt;
    std::array<std::uint8_t, N> out{};
    std::copy(bytes->begin(), bytes->end(), out.begin());
    return out;
}

std::string secret_key_json(const KeyPair& kp) {
    Json j;
    j["type"] = "ed25519-secret";
    j["seed"] = to_hex(ByteView(kp.secret_key.data(), crypto_sign_SEEDBYTES));
    j["public"] = to_hex(kp.public_key);
    return json_strict::dump(j) + "\n";
}

std::string public_key_json(const PublicKey& key) {
    Json j;
    j["type"] = "ed25519-public";
    j["public"] = to_hex(key);
    j["keyid"] = key_id(key);
    return json_strict::dump(j) + "\n";
}

Result<KeyPair> parse_secret_key(std::string_view content, const std::filesystem::path& path) {
    auto doc = json_strict::parse(content, path.string());
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    json_strict::ObjectReader r(*doc, path.string(), err);
    r.allow_only({"type", "seed", "public"});
    const std::string type = r.string("type");
    std::string seed_hex = r.string("seed");
    const std::string public_hex = r.string("public");
    if (err) return std::unexpected(*err);
    auto seed = fixed_from_hex<32>(seed_hex);
    sodium_memzero(seed_hex.data(), seed_hex.size());
    auto pub = fixed_from_hex<32>(public_hex);
    if (type != "ed25519-secret" || !seed || !pub) {
        return fail(Errc::malformed, path.string() + ": not an ed25519 secret key file");
    }
    KeyPair kp = keypair_from_seed(*seed);
    sodium_memzero(seed->data(), seed->size());
    if (kp.public_key != *pub) {
        return fail(Errc::malformed, path.string() + ": public key does not match the seed");
    }
    return kp;
}

bool is_valid_payload_type(std::string_view type) {
    if (type.empty() || type.size() > kMaxPayloadTypeBytes) return false;
    // Printable ASCII only: in particular no NUL, which would make the pre-auth encoding
    // ambiguous.
    return std::all_of(type.begin(), type.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

SignatureEntry read_signature(const Json& v, const std::string& where, std::optional<Error>& err) {
    json_strict::ObjectReader r(v, where, err);
    r.allow_only({"keyid", "sig"});
    SignatureEntry entry{r.string("keyid"), {}};
    const std::string sig_b64 = r.string("sig");
    if (!r.ok()) return entry;
    if (!json_strict::is_lower_hex(entry.keyid, 64)) {
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
    if (hex.size() % 2 != 0 || !json_strict::is_lower_hex(hex, hex.size())) {
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

Bytes random_bytes(std::size_t n) {
    Bytes out(n);
    if (n > 0) randombytes_buf(out.data(), n);
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

Result<Sha256> sha256_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(errno_error("cannot open", path, errno));
    Sha256Stream stream;
    auto r =
        posix::read_all(fd.get(), path, max_bytes, [&](ByteView chunk) { stream.update(chunk); });
    if (!r) return std::unexpected(r.error());
    return stream.finish();
}

// ---- Ed25519 ---------------------------------------------------------------------------------

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

// ---- key files -------------------------------------------------------------------------------

Result<void> write_keypair(const std::filesystem::path& base, const KeyPair& kp) {
    const auto key_path = with_suffix(base, ".key");
    const auto pub_path = with_suffix(base, ".pub");
    // Checked up front so that an existing .pub does not leave a fresh .key behind; O_EXCL
    // below still closes the race for the secret key itself.
    struct stat st {};
    if (::lstat(pub_path.c_str(), &st) == 0) {
        return fail(Errc::already_exists, pub_path.string() + " already exists");
    }
    std::string secret = secret_key_json(kp);
    auto written = write_new_file(key_path, secret, 0600);
    sodium_memzero(secret.data(), secret.size());
    if (!written) return written;
    if (auto r = write_new_file(pub_path, public_key_json(kp.public_key), 0644); !r) {
        ::unlink(key_path.c_str());  // created by us just above: no half-written key pair
        return r;
    }
    fsync_parent_dir(key_path);
    return {};
}

Result<KeyPair> load_secret_key(const std::filesystem::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(errno_error("cannot open", path, errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return std::unexpected(errno_error("stat", path, errno));
    if (!S_ISREG(st.st_mode)) return fail(Errc::malformed, path.string() + ": not a regular file");
    // Checked on the open descriptor, not the name, so a swapped file cannot slip past.
    if ((st.st_mode & 077) != 0) {
        return fail(Errc::permission,
                    path.string() + ": secret key is accessible by group or others (chmod 600)");
    }
    auto content = read_small_file(fd.get(), path);
    if (!content) return std::unexpected(content.error());
    auto kp = parse_secret_key(*content, path);
    sodium_memzero(content->data(), content->size());
    return kp;
}

Result<PublicKey> load_public_key(const std::filesystem::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(errno_error("cannot open", path, errno));
    auto content = read_small_file(fd.get(), path);
    if (!content) return std::unexpected(content.error());
    auto key = parse_public_key(*content);
    if (!key) return fail(key.error().code, path.string() + ": " + key.error().message);
    return key;
}

Result<PublicKey> parse_public_key(std::string_view file_content) {
    if (file_content.size() > kMaxKeyFileBytes) {
        return fail(Errc::too_large, "public key file too large");
    }
    auto doc = json_strict::parse(file_content, "public key");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    json_strict::ObjectReader r(*doc, "public key", err);
    r.allow_only({"type", "public", "keyid"});
    const std::string type = r.string("type");
    const std::string public_hex = r.string("public");
    // keyid is redundant; when present it must agree, so a tampered file is noticed.
    const std::string id = r.has("keyid") ? r.string("keyid") : std::string();
    if (err) return std::unexpected(*err);
    auto key = fixed_from_hex<32>(public_hex);
    if (type != "ed25519-public" || !key) {
        return fail(Errc::malformed, "not an ed25519 public key file");
    }
    if (r.has("keyid") && id != key_id(*key)) {
        return fail(Errc::malformed, "keyid does not match the public key");
    }
    return *key;
}

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
    return json_strict::dump(j);
}

Result<Envelope> parse_envelope(std::string_view json, std::size_t max_bytes) {
    if (json.size() > max_bytes) {
        return fail(Errc::too_large,
                    "envelope larger than " + std::to_string(max_bytes) + " bytes");
    }
    auto doc = json_strict::parse(json, "envelope");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    json_strict::ObjectReader r(*doc, "envelope", err);
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

}  // namespace patchswarm::crypto
