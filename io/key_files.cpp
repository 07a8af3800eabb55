#include "io/key_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "core/json_strict.hpp"
#include "io/posix_io.hpp"

namespace patchswarm::io {

namespace {

using core::json_strict::Json;
using namespace crypto;
using io::posix::errno_error;
using io::posix::Fd;
using io::posix::write_all;

// Key files are a few hundred bytes; anything larger is not a key file.
constexpr std::size_t kMaxKeyFileBytes = 4096;

Result<std::string> read_small_file(int fd, const std::filesystem::path& path) {
    std::string content;
    auto r = io::posix::read_all(fd, path, kMaxKeyFileBytes, [&](ByteView chunk) {
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
    j["seed"] = to_hex(ByteView(kp.secret_key.data(), kSeedBytes));
    j["public"] = to_hex(kp.public_key);
    return core::json_strict::dump(j) + "\n";
}

std::string public_key_json(const PublicKey& key) {
    Json j;
    j["type"] = "ed25519-public";
    j["public"] = to_hex(key);
    j["keyid"] = key_id(key);
    return core::json_strict::dump(j) + "\n";
}

Result<KeyPair> parse_secret_key(std::string_view content, const std::filesystem::path& path) {
    auto doc = core::json_strict::parse(content, path.string());
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    core::json_strict::ObjectReader r(*doc, path.string(), err);
    r.allow_only({"type", "seed", "public"});
    const std::string type = r.string("type");
    std::string seed_hex = r.string("seed");
    const std::string public_hex = r.string("public");
    if (err) return std::unexpected(*err);
    auto seed = fixed_from_hex<32>(seed_hex);
    wipe(seed_hex);
    auto pub = fixed_from_hex<32>(public_hex);
    if (type != "ed25519-secret" || !seed || !pub) {
        return fail(Errc::malformed, path.string() + ": not an ed25519 secret key file");
    }
    KeyPair kp = keypair_from_seed(*seed);
    wipe(*seed);
    if (kp.public_key != *pub) {
        return fail(Errc::malformed, path.string() + ": public key does not match the seed");
    }
    return kp;
}

}  // namespace

Result<Sha256> sha256_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(errno_error("cannot open", path, errno));
    Sha256Stream stream;
    auto r = io::posix::read_all(fd.get(), path, max_bytes,
                                 [&](ByteView chunk) { stream.update(chunk); });
    if (!r) return std::unexpected(r.error());
    return stream.finish();
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
    wipe(secret);
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
    wipe(*content);
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
    auto doc = core::json_strict::parse(file_content, "public key");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    core::json_strict::ObjectReader r(*doc, "public key", err);
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

}  // namespace patchswarm::io
