// io::ZoneInfo: the system zone database (/usr/share/zoneinfo, Debian package tzdata) read
// through CCTZ. Offsets against the C library over seventy years (past the last transition a
// file lists, so its footer rule too), DST nights and half-hour zones under the window policy,
// far-future instants, and names and files that must be refused.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/rollout.hpp"
#include "io/fs.hpp"
#include "io/zoneinfo.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::core;

namespace {

constexpr std::int64_t kHour = 3600;
constexpr std::int64_t kDay = 86400;
constexpr std::uint8_t kMon = 1, kTue = 2, kWed = 4, kThu = 8, kFri = 16, kSun = 64;

// Unix seconds of a UTC calendar time.
std::int64_t utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
    using namespace std::chrono;
    const auto days_since_epoch = sys_days{year{y} / month{mo} / day{d}}.time_since_epoch().count();
    return std::int64_t{days_since_epoch} * kDay + h * kHour + mi * 60 + s;
}

// A hand-made version 2 TZif file: one transition at `at` from UTC+0 to UTC+1 and a footer.
std::string tiny_tzif(std::string_view footer, std::int64_t at = 1000) {
    const auto be32 = [](std::uint32_t v) {
        return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    };
    const auto be64 = [&](std::uint64_t v) {
        return be32(static_cast<std::uint32_t>(v >> 32)) + be32(static_cast<std::uint32_t>(v));
    };
    const auto header = [&](char version, std::uint32_t timecnt) {
        return std::string("TZif") + version + std::string(15, '\0') + be32(0) + be32(0) + be32(0) +
               be32(timecnt) + be32(2) + be32(8);
    };
    const std::string types = be32(0) + '\0' + '\0' + be32(3600) + '\0' + '\4';
    const std::string chars("UTC\0ONE\0", 8);
    std::string v1 = header('2', 1) + be32(static_cast<std::uint32_t>(at)) + '\1' + types + chars;
    std::string v2 = header('2', 1) + be64(static_cast<std::uint64_t>(at)) + '\1' + types + chars;
    return v1 + v2 + "\n" + std::string(footer) + "\n";
}

}  // namespace

TEST_CASE("zoneinfo offsets agree with the C library across zones and years", "[io]") {
    io::ZoneInfo zones;
    for (const char* name :
         {"America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe",
          "America/Nuuk", "Pacific/Chatham", "America/Santiago", "Africa/Casablanca", "UTC"}) {
        INFO(name);
        REQUIRE(zones.zone(name).has_value());
        REQUIRE(::setenv("TZ", (std::string(":") + name).c_str(), 1) == 0);
        ::tzset();
        // Every 7 h 13 min from 1990 to 2060: well past the transitions listed in the file
        // (Debian's tzdata lists them up to 2037), so the footer rule is checked too.
        std::size_t compared = 0;
        for (std::int64_t t = utc(1990, 1, 1); t < utc(2060, 1, 1); t += 7 * kHour + 13 * 60) {
            const std::time_t tt = static_cast<std::time_t>(t);
            std::tm local{};
            const auto ours = zones.utc_offset(name, t);
            if (::localtime_r(&tt, &local) == nullptr || !ours || *ours != local.tm_gmtoff) {
                FAIL_CHECK(name << " at " << t << ": " << ours.value_or(-1) << " vs "
                                << local.tm_gmtoff);
                break;
            }
            ++compared;
        }
        CHECK(compared > 80'000);
    }
    ::unsetenv("TZ");
}

TEST_CASE("windows on DST nights hold in the real zone database as in the rules", "[io]") {
    io::ZoneInfo zones;
    const UtcOffsetFn real = zones.offset_fn();
    const std::int64_t jump = utc(2025, 3, 9, 7, 0);  // New York springs forward
    const Window spring{"g", kSun, 2 * 60, 4 * 60, "America/New_York"};
    CHECK(in_window(spring, real, jump - 1) == false);
    CHECK(in_window(spring, real, jump) == true);
    CHECK(next_window_open(std::vector<Window>{spring}, real, utc(2025, 3, 9)) == jump);
    const std::int64_t back = utc(2025, 11, 2, 6, 0);  // and falls back
    const Window fall{"g", kSun, 60, 2 * 60, "America/New_York"};
    CHECK(in_window(fall, real, back - kHour) == true);
    CHECK(in_window(fall, real, back + kHour - 1) == true);
    CHECK(in_window(fall, real, back + kHour) == false);
    const std::int64_t howe = utc(2025, 10, 4, 15, 30);  // Lord Howe, half an hour
    const Window lh{"g", kSun, 2 * 60, 3 * 60, "Australia/Lord_Howe"};
    CHECK(next_window_open(std::vector<Window>{lh}, real, utc(2025, 10, 4)) == howe);
    CHECK(in_window(lh, real, howe + 30 * 60) == false);

    // A weekday window in New York across midnight, on a Tuesday night in November.
    Rollout r;
    r.windows = {
        Window{"finance", kMon | kTue | kWed | kThu | kFri, 22 * 60, 4 * 60, "America/New_York"}};
    const std::vector<std::string> groups{"finance"};
    CHECK(
        may_install(r, real, true, false, std::nullopt, utc(2025, 11, 25, 3, 30), groups).allowed);
    CHECK_FALSE(
        may_install(r, real, true, false, std::nullopt, utc(2025, 11, 25, 12, 0), groups).allowed);
}

TEST_CASE("the zoneinfo adapter refuses bad names before touching the disk", "[io]") {
    io::ZoneInfo zones;
    auto escape = zones.zone("../../etc/passwd");
    REQUIRE_FALSE(escape.has_value());
    CHECK(escape.error().code == Errc::malformed);
    auto missing = zones.zone("Nowhere/Nothing");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == Errc::not_found);
    CHECK_FALSE(zones.utc_offset("Nowhere/Nothing", 0).has_value());
    // A folder is not a zone.
    CHECK_FALSE(zones.zone("America").has_value());
    // Cached: the same object comes back.
    auto a = zones.zone("Europe/Berlin");
    auto b = zones.zone("Europe/Berlin");
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(*a == *b);

    // A damaged file in a zone folder of our own is refused with the decoder's error.
    const auto dir = std::filesystem::temp_directory_path() / "patchswarm-test-zoneinfo";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "Bad");
    REQUIRE(io::write_file_atomic(dir / "Bad" / "Zone", "TZif2 but not really").has_value());
    REQUIRE(io::write_file_atomic(dir / "Good", tiny_tzif("ONE-1")).has_value());
    io::ZoneInfo own(dir);
    auto damaged = own.zone("Bad/Zone");
    REQUIRE_FALSE(damaged.has_value());
    CHECK(damaged.error().code == Errc::malformed);
    CHECK(own.utc_offset("Good", 2000) == 3600);
    std::filesystem::remove_all(dir);
}

TEST_CASE("half-hour zones and instants far beyond the last listed transition", "[io]") {
    io::ZoneInfo zones;
    CHECK(zones.utc_offset("Asia/Kolkata", utc(2025, 6, 1)) == 5 * 3600 + 1800);
    CHECK(zones.utc_offset("Asia/Kathmandu", utc(2025, 6, 1)) == 5 * 3600 + 2700);
    // Lord Howe shifts by half an hour: +11 in January, +10:30 in July, in 2200 as in 2025.
    for (const int y : {2025, 2200}) {
        INFO(y);
        CHECK(zones.utc_offset("Australia/Lord_Howe", utc(y, 1, 15)) == 11 * 3600);
        CHECK(zones.utc_offset("Australia/Lord_Howe", utc(y, 7, 15)) == 10 * 3600 + 1800);
    }
    // New York in 2045 (tzdata lists transitions to 2037; the rest is the footer rule): the
    // second Sunday of March is the 12th, the first of November the 5th.
    const auto ny = [&](std::int64_t at) { return zones.utc_offset("America/New_York", at); };
    CHECK(ny(utc(2045, 3, 12, 7, 0) - 1) == -5 * 3600);
    CHECK(ny(utc(2045, 3, 12, 7, 0)) == -4 * 3600);
    CHECK(ny(utc(2045, 11, 5, 6, 0) - 1) == -4 * 3600);
    CHECK(ny(utc(2045, 11, 5, 6, 0)) == -5 * 3600);
    // Instants at the ends of the 64-bit range do not overflow.
    CHECK(zones.utc_offset("UTC", INT64_MAX / 2) == 0);
    CHECK(zones.utc_offset("Europe/Berlin", -(std::int64_t{1} << 40)).has_value());
}

TEST_CASE("a hand-made zone file gives its offsets, truncated copies are refused", "[io]") {
    patchswarm::test::TempDir dir("ps-zoneinfo");
    const std::string good = tiny_tzif("ONE-1");
    REQUIRE(io::write_file_atomic(dir.path() / "Good", good).has_value());
    REQUIRE(io::write_file_atomic(dir.path() / "Empty", "").has_value());
    REQUIRE(
        io::write_file_atomic(dir.path() / "Half", good.substr(0, good.size() / 2)).has_value());
    REQUIRE(io::write_file_atomic(dir.path() / "Big", std::string(io::kMaxTzifBytes + 1, 'T'))
                .has_value());
    io::ZoneInfo own(dir.path());
    CHECK(own.utc_offset("Good", 999) == 0);
    CHECK(own.utc_offset("Good", 1000) == 3600);
    CHECK(own.utc_offset("Good", 4'000'000'000) == 3600);
    for (const char* name : {"Empty", "Half"}) {
        INFO(name);
        const auto r = own.zone(name);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::malformed);
    }
    CHECK(own.zone("Big").error().code == Errc::too_large);
}
