// Adapter: time zones from the system zone database (/usr/share/zoneinfo, Debian package
// tzdata), for the rollout policy's maintenance windows. Decoding the TZif files, and the POSIX
// TZ rule in their footer that covers instants after the last listed transition, is Google's
// CCTZ (Debian package libcctz-dev); this class validates the name, finds the file, and keeps
// what it loaded. The core sees only core::UtcOffsetFn (core/rollout.hpp).
//
// Not thread-safe: one owner (the agent's io_context thread) uses it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "core/rollout.hpp"

namespace patchswarm::io {

inline constexpr std::string_view kDefaultZoneinfoDir = "/usr/share/zoneinfo";
inline constexpr std::uintmax_t kMaxTzifBytes = 256 * 1024;  // real files are under 4 KiB

// One zone's rules, immutable once loaded (so thread-safe); cheap to copy.
class TimeZone {
  public:
    // Seconds east of UTC in effect at unix instant `at`, any instant (past the last transition
    // the file's footer rule applies).
    std::int32_t utc_offset(std::int64_t at) const;

  private:
    friend class ZoneInfo;
    struct Rules;  // the CCTZ zone, kept out of this header
    std::shared_ptr<const Rules> rules_;
};

class ZoneInfo {
  public:
    explicit ZoneInfo(std::filesystem::path dir = std::filesystem::path(kDefaultZoneinfoDir));

    // Loads the zone (once; failures are remembered too). Errc::malformed for a name that is not
    // a zone name (never touches the filesystem then) and for a damaged file, Errc::not_found for
    // an unknown zone (no such file, or not a regular file), Errc::too_large beyond
    // kMaxTzifBytes.
    [[nodiscard]] Result<const TimeZone*> zone(std::string_view name);

    // Seconds east of UTC in `name` at unix instant `at`; nullopt when zone(name) fails.
    std::optional<std::int32_t> utc_offset(std::string_view name, std::int64_t at);

    // A core::UtcOffsetFn bound to this object, which must outlive it.
    core::UtcOffsetFn offset_fn();

  private:
    std::filesystem::path dir_;
    std::map<std::string, Result<TimeZone>, std::less<>> cache_;
};

}  // namespace patchswarm::io
