#include "io/zoneinfo.hpp"

#include <cctz/time_zone.h>

#include <chrono>
#include <system_error>
#include <utility>

#include "core/manifest.hpp"

namespace patchswarm::io {

struct TimeZone::Rules {
    cctz::time_zone zone;
};

std::int32_t TimeZone::utc_offset(std::int64_t at) const {
    // Whole seconds in a 64-bit count: any instant, unlike system_clock's nanoseconds.
    const cctz::time_point<cctz::seconds> instant{cctz::seconds{at}};
    return static_cast<std::int32_t>(rules_->zone.lookup(instant).offset);
}

ZoneInfo::ZoneInfo(std::filesystem::path dir) : dir_(std::move(dir)) {}

Result<const TimeZone*> ZoneInfo::zone(std::string_view name) {
    auto found = cache_.find(name);
    if (found == cache_.end()) {
        Result<TimeZone> loaded = [&]() -> Result<TimeZone> {
            const auto failed = [&](Errc code, std::string_view why) {
                return fail(code, "time zone \"" + std::string(name) + "\": " + std::string(why));
            };
            // The name becomes a path: only well-formed zone names (no "..", no leading '/').
            if (auto valid = core::validate_zone_name(name); !valid) {
                return failed(valid.error().code, valid.error().message);
            }
            // CCTZ reads an absolute path as it is (a relative name it would look up in $TZDIR),
            // and reports only "loaded or not": the checks here give the distinct errors.
            std::error_code ec;
            const auto path = std::filesystem::absolute(dir_ / std::string(name), ec);
            if (ec) return failed(Errc::io, ec.message());
            const auto status = std::filesystem::status(path, ec);
            if (ec || status.type() != std::filesystem::file_type::regular) {
                return failed(Errc::not_found, "no such zone file " + path.string());
            }
            const auto size = std::filesystem::file_size(path, ec);
            if (ec) return failed(Errc::io, ec.message());
            if (size > kMaxTzifBytes) return failed(Errc::too_large, "zone file is too large");
            TimeZone tz;
            cctz::time_zone zone;
            if (!cctz::load_time_zone(path.string(), &zone)) {
                return failed(Errc::malformed, "not a valid TZif file: " + path.string());
            }
            tz.rules_ = std::make_shared<const TimeZone::Rules>(TimeZone::Rules{zone});
            return tz;
        }();
        found = cache_.emplace(std::string(name), std::move(loaded)).first;
    }
    if (!found->second) return std::unexpected(found->second.error());
    return &*found->second;
}

std::optional<std::int32_t> ZoneInfo::utc_offset(std::string_view name, std::int64_t at) {
    auto tz = zone(name);
    if (!tz) return std::nullopt;
    return (*tz)->utc_offset(at);
}

core::UtcOffsetFn ZoneInfo::offset_fn() {
    return [this](std::string_view name, std::int64_t at) { return utc_offset(name, at); };
}

}  // namespace patchswarm::io
