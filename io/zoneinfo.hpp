// Adapter: time zones from the system zone database (/usr/share/zoneinfo, Debian package
// tzdata), for the rollout policy's maintenance windows. Reads a zone's TZif file the first time
// it is asked for and keeps the decoded rules; decoding itself is core (rollout_tz.hpp).
//
// Not thread-safe: one owner (the agent's io_context thread) uses it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "core/rollout.hpp"
#include "core/rollout_tz.hpp"

namespace patchswarm::io {

inline constexpr std::string_view kDefaultZoneinfoDir = "/usr/share/zoneinfo";

class ZoneInfo {
  public:
    explicit ZoneInfo(std::filesystem::path dir = std::filesystem::path(kDefaultZoneinfoDir));

    // Loads the zone (once; failures are remembered too). Errc::malformed for a name that is not
    // a zone name (never touches the filesystem then), Errc::not_found for an unknown zone, and
    // the TZif decoder's errors for a damaged file.
    [[nodiscard]] Result<const core::TimeZone*> zone(std::string_view name);

    // Seconds east of UTC in `name` at unix instant `at`; nullopt when zone(name) fails.
    std::optional<std::int32_t> utc_offset(std::string_view name, std::int64_t at);

    // A core::UtcOffsetFn bound to this object, which must outlive it.
    core::UtcOffsetFn offset_fn();

  private:
    std::filesystem::path dir_;
    std::map<std::string, Result<core::TimeZone>, std::less<>> cache_;
};

}  // namespace patchswarm::io
