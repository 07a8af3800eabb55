// Time zone rules for maintenance windows: the UTC offset of a zone at any instant, decoded from
// the bytes of a TZif file (RFC 8536, as compiled by zic into /usr/share/zoneinfo) including the
// POSIX TZ rule in its footer that covers instants after the last listed transition.
//
// Why our own decoder: GCC 12's libstdc++ has no std::chrono time zone database, and all the
// policy needs is "offset at instant". Decoding is pure (bytes in, rules out; no I/O, no global
// state, no exceptions), so it lives in the core; reading the file is the adapter in
// rollout_zoneinfo.hpp.
//
// Everything here is thread-safe: TimeZone is immutable after parsing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::core {

inline constexpr std::size_t kMaxTzifBytes = 256 * 1024;  // real files are under 4 KiB
inline constexpr std::size_t kMaxTzifTransitions = 10'000;
inline constexpr std::size_t kMaxPosixTzBytes = 128;

// One end of a daylight-saving period in a POSIX TZ rule: a day of the year and a local time.
struct PosixDate {
    enum class Kind { julian_no_leap, zero_based, month_week_day };  // "Jn", "n", "Mm.w.d"
    Kind kind = Kind::month_week_day;
    int day = 0;    // Jn: 1..365 (Feb 29 never counted); n: 0..365; Mm.w.d: weekday 0=Sun..6
    int month = 1;  // Mm.w.d: 1..12
    int week = 1;   // Mm.w.d: 1..5, 5 = last
    std::int32_t time_s = 2 * 3600;  // local time of the change, -167h..167h (RFC 8536 extension)

    bool operator==(const PosixDate&) const = default;
};

// A POSIX TZ string such as "EST5EDT,M3.2.0,M11.1.0" or "<+0530>-5:30". Offsets are stored as
// seconds EAST of UTC (the POSIX text counts west, with the opposite sign).
struct PosixTz {
    std::int32_t std_offset = 0;
    struct Dst {
        std::int32_t offset = 0;
        PosixDate start;  // in standard local time
        PosixDate end;    // in daylight local time
        bool operator==(const Dst&) const = default;
    };
    std::optional<Dst> dst;

    std::int32_t utc_offset(std::int64_t at) const;

    bool operator==(const PosixTz&) const = default;
};

// Errc::malformed for anything outside the POSIX grammar; a DST name without a rule is refused
// (zic always writes one), as are offsets beyond +-24 h.
[[nodiscard]] Result<PosixTz> parse_posix_tz(std::string_view text);

class TimeZone {
  public:
    // Seconds east of UTC in effect at unix instant `at`: before the first transition the first
    // local time type, after the last one the footer rule (if any), else the last type.
    std::int32_t utc_offset(std::int64_t at) const;

  private:
    friend Result<TimeZone> parse_tzif(std::span<const std::uint8_t> bytes);

    std::vector<std::int64_t> transitions_;  // strictly ascending unix seconds
    std::vector<std::uint8_t> type_of_;      // per transition: index into offsets_
    std::vector<std::int32_t> offsets_;      // per local time type
    std::optional<PosixTz> footer_;
};

// Decodes a TZif file (versions 1-4; the 64-bit block and footer when version >= 2). Refuses
// (Errc::malformed) bad magic, truncation, counts or indices out of range, unsorted transitions,
// zones with leap-second records ("right/" zones), and a malformed footer; Errc::too_large beyond
// kMaxTzifBytes or kMaxTzifTransitions.
[[nodiscard]] Result<TimeZone> parse_tzif(std::span<const std::uint8_t> bytes);

}  // namespace patchswarm::core
