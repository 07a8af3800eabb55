// The release manifest: what a release is, which bytes it consists of, and how to install it.
// Pure model + validation; no I/O. The manifest travels inside a crypto::Envelope of type
// payload_type::manifest; its exact bytes are what is signed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::core {

// Fixed bounds for anything parsed from the network or disk.
inline constexpr std::size_t kMaxManifestBytes = 1 << 20;  // 1 MiB
inline constexpr std::size_t kMaxFiles = 10'000;
inline constexpr std::size_t kMaxPathBytes = 1024;
inline constexpr std::size_t kMaxPathComponentBytes = 255;
inline constexpr std::size_t kMaxPathDepth = 32;
inline constexpr std::size_t kMaxIdBytes = 64;
inline constexpr std::size_t kMaxArgs = 64;
inline constexpr std::size_t kMaxArgBytes = 4096;
inline constexpr std::uint64_t kMaxPayloadBytes = 64ull << 30;  // 64 GiB total per release
inline constexpr std::uint32_t kMaxTimeoutS = 24 * 60 * 60;     // install/verify time limit

enum class Severity { low, normal, important, critical, emergency };
enum class RebootPolicy { none, required, if_needed };  // if_needed: exit 3010 decides

std::string_view to_string(Severity);
std::string_view to_string(RebootPolicy);
std::optional<Severity> parse_severity(std::string_view);
std::optional<RebootPolicy> parse_reboot_policy(std::string_view);

struct FileEntry {
    std::string path;  // relative, '/'-separated, validated by validate_relative_path
    std::uint64_t size = 0;
    std::string sha256;  // lowercase hex, 64 chars

    bool operator==(const FileEntry&) const = default;
};

// Named CommandLine, not Command: core::Command is the state machine's command variant.
struct CommandLine {
    std::vector<std::string> argv;   // argv[0] is run relative to the release folder if it has '/'
    std::uint32_t timeout_s = 1800;  // 1 .. kMaxTimeoutS

    bool operator==(const CommandLine&) const = default;
};

struct Manifest {
    int format = 1;
    std::string repository;  // name of the publishing repository
    std::string id;          // release id, e.g. "MS08-067": [A-Za-z0-9._-]{1,64}, not "." / ".."
    std::uint64_t sequence = 0;  // increases per repository with every publish
    std::int64_t created = 0;    // unix seconds
    std::int64_t expires = 0;    // unix seconds
    Severity severity = Severity::normal;
    std::string name;              // torrent name: the payload's top-level file or folder name
    std::vector<FileEntry> files;  // sorted by path, unique
    std::string infohash_v2;       // lowercase hex, 64 chars (BitTorrent v2 info-hash)
    CommandLine install;
    std::optional<CommandLine> verify;  // run after install (and after reboot, if required)
    RebootPolicy reboot = RebootPolicy::none;

    std::uint64_t total_size() const;  // saturates instead of wrapping

    bool operator==(const Manifest&) const = default;
};

// Validates a relative path from a manifest or torrent: not empty, no leading '/', no '\\', no
// NUL or control characters, no empty, "." or ".." components, component and depth bounds.
// Errc::too_large for the length/depth bounds, Errc::unsafe_path for everything else.
[[nodiscard]] Result<void> validate_relative_path(std::string_view path);
// Release ids (and repository names) become folder names: [A-Za-z0-9._-]{1,64}, not "." / "..".
// Errc::too_large over kMaxIdBytes, Errc::unsafe_path for "." / "..", Errc::malformed otherwise.
[[nodiscard]] Result<void> validate_release_id(std::string_view id);

// Checks every field and bound of a model (the checks parse_manifest applies after decoding),
// so a publisher can refuse to sign a manifest that endpoints would reject.
[[nodiscard]] Result<void> validate_manifest(const Manifest& m);

// Canonical JSON bytes for signing (stable key order, compact). parse_manifest(serialize(m))
// round-trips exactly.
std::string serialize_manifest(const Manifest& m);

// Parses and validates every field and bound (Errc::malformed, Errc::too_large,
// Errc::unsafe_path). Input over kMaxManifestBytes is refused before parsing; duplicate and
// unknown JSON keys are refused. Error messages name the field ("manifest.files[2].path: ...").
// Does not check expiry; see check_manifest_fresh.
[[nodiscard]] Result<Manifest> parse_manifest(std::string_view json);

// Errc::expired once now_unix >= m.expires.
[[nodiscard]] Result<void> check_manifest_fresh(const Manifest& m, std::int64_t now_unix);

}  // namespace patchswarm::core
