// The release manifest: what a release is, which bytes it consists of, and how to install it.
// Pure model + validation; no I/O. The manifest travels inside a core::Envelope of type
// payload_type::manifest; its exact bytes are what is signed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/envelope.hpp"
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

// --- Rollout policy (optional, signed with the manifest) -----------------------------------------
//
// Fractions and percentages are kept as integer basis points (1/10000) so that policy arithmetic
// is exact and the model compares with ==. In JSON they are decimal numbers: "percent": 2.5,
// "success_threshold": 0.95, "max_failure_rate": 0.2.

inline constexpr std::size_t kMaxRings = 16;
inline constexpr std::size_t kMaxRingGroups = 64;
inline constexpr std::size_t kMaxRingDevices = 1000;
inline constexpr std::size_t kMaxWindows = 256;
inline constexpr std::size_t kMaxGroupBytes = 64;      // group names: [A-Za-z0-9._-]{1,64}
inline constexpr std::size_t kMaxZoneNameBytes = 64;   // IANA names, e.g. "America/New_York"
inline constexpr std::size_t kDeviceIdHexChars = 32;   // see PROTOCOL.md, Report
inline constexpr std::uint32_t kBasisPoints = 10'000;  // 100 %
inline constexpr std::int64_t kMaxSoakS = 30 * 24 * 60 * 60;

// An endpoint's device id: hex(SHA-256(device public key))[0:32]. Rings name devices by it; the
// seeder files reports and enrolments under it; certificates carry it as their CN.
inline std::string device_id_for(const crypto::PublicKey& device_key) {
    return crypto::key_id(device_key).substr(0, kDeviceIdHexChars);
}
// A window whose group is "*" applies to endpoints none of whose groups has a window of its own.
inline constexpr std::string_view kAnyGroup = "*";

// One ring of a staged rollout. An endpoint belongs to the first ring that selects it: by one of
// its groups, by its device id, or by the stable percentage (see rollout.hpp, fleet_bucket). At
// least one selector is set. Endpoints no ring selects form an implicit last ring.
struct Ring {
    std::string name;                         // [A-Za-z0-9._-]{1,64}, unique within the rollout
    std::vector<std::string> groups;          // unique group names
    std::vector<std::string> devices;         // unique device ids, 32 lowercase hex digits
    std::uint32_t fleet_bp = 0;               // 0 = none; else select fleet_bucket(id) < fleet_bp
    std::uint32_t success_bp = kBasisPoints;  // share of reachable members that must be effective
    std::int64_t soak_s = 0;                  // wait after success before the next ring opens
    std::uint32_t max_failure_bp = kBasisPoints;  // failure rate above this halts the release

    bool operator==(const Ring&) const = default;
};

// Days of a window as a bit set: bit 0 = Monday ... bit 6 = Sunday.
inline constexpr std::uint8_t kAllDays = 0x7f;

// A maintenance window in a group's local time: on each listed day from `start_min` to `end_min`
// (minutes after local midnight). end_min <= start_min crosses midnight into the next day (the
// day listed is the day the window starts). end_min may be 1440 ("24:00").
struct Window {
    std::string group;  // group name, or kAnyGroup
    std::uint8_t days = kAllDays;
    std::uint16_t start_min = 0;  // 0 .. 1439
    std::uint16_t end_min = 0;    // 1 .. 1440, != start_min
    std::string zone;             // IANA time zone name ("UTC", "Europe/Berlin")

    bool operator==(const Window&) const = default;
};

struct Rollout {
    std::vector<Ring> rings;               // in order; may be empty (everyone in the implicit ring)
    std::optional<std::int64_t> deadline;  // unix seconds: after it, windows and deferral no
                                           // longer hold back an install or reboot
    std::vector<Window> windows;           // empty: no window restriction

    bool operator==(const Rollout&) const = default;
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
    std::optional<Rollout> rollout;  // absent: every endpoint may install at once, any time
    // The publisher says the install may run again over a half-finished run of itself: an
    // installer that died (killed, power loss) is then re-run with a counted attempt; otherwise
    // the endpoint waits for an operator (docs/RELIABILITY.md). Default off: an emergency patch
    // nobody marked idempotent is never re-run behind the admin's back. Serialised only when
    // true, so older manifests keep their exact bytes.
    bool idempotent = false;

    std::uint64_t total_size() const;  // saturates instead of wrapping

    bool operator==(const Manifest&) const = default;
};

// Validates a relative path from a manifest or torrent: not empty, no leading '/', no '\\', no
// NUL or control characters, no empty, "." or ".." components, component and depth bounds, and
// the Windows rules of validate_windows_path (core/path_rules.hpp: no UNC prefix, drive letter,
// ':', reserved device name, trailing dot or space), on every platform.
// Errc::too_large for the length/depth bounds, Errc::unsafe_path for everything else.
[[nodiscard]] Result<void> validate_relative_path(std::string_view path);
// Release ids (and repository names) become folder names: [A-Za-z0-9._-]{1,64}, not "." / "..".
// Errc::too_large over kMaxIdBytes, Errc::unsafe_path for "." / "..", Errc::malformed otherwise.
// (A manifest's own id must also pass validate_windows_component: validate_manifest.)
[[nodiscard]] Result<void> validate_release_id(std::string_view id);

// Group names share the release id alphabet: [A-Za-z0-9._-]{1,64}, not "." / "..".
[[nodiscard]] Result<void> validate_group_name(std::string_view group);
// IANA-style zone names: '/'-separated components of [A-Za-z0-9._+-], each starting with a letter
// (so no ".." and no leading '/'), at most kMaxZoneNameBytes. Whether the zone exists is not
// checked here (that needs the zone database).
[[nodiscard]] Result<void> validate_zone_name(std::string_view zone);
// Every bound of a rollout section; `created`/`expires` are the manifest's (the deadline must lie
// between them). Messages start with "manifest.rollout".
[[nodiscard]] Result<void> validate_rollout(const Rollout& r, std::int64_t created,
                                            std::int64_t expires);

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

// Decodes a rollout section on its own (the JSON object a manifest carries under "rollout"),
// e.g. a publisher's policy file: strict like parse_manifest (unknown or duplicate keys,
// mistyped fields). Bounds that need the manifest (the deadline between created and expires)
// are left to validate_rollout. Messages start with "rollout".
[[nodiscard]] Result<Rollout> parse_rollout(std::string_view json);
// The canonical JSON of a rollout section, as serialize_manifest writes it.
std::string serialize_rollout(const Rollout& r);

// Errc::expired once now_unix >= m.expires.
[[nodiscard]] Result<void> check_manifest_fresh(const Manifest& m, std::int64_t now_unix);

}  // namespace patchswarm::core
