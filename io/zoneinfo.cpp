#include "io/zoneinfo.hpp"

#include <span>
#include <utility>

#include "core/manifest.hpp"
#include "io/fs.hpp"

namespace patchswarm::io {

ZoneInfo::ZoneInfo(std::filesystem::path dir) : dir_(std::move(dir)) {}

Result<const core::TimeZone*> ZoneInfo::zone(std::string_view name) {
    auto found = cache_.find(name);
    if (found == cache_.end()) {
        Result<core::TimeZone> loaded = [&]() -> Result<core::TimeZone> {
            // The name becomes a path: only well-formed zone names (no "..", no leading '/').
            if (auto valid = core::validate_zone_name(name); !valid) {
                return fail(valid.error().code,
                            "time zone \"" + std::string(name) + "\": " + valid.error().message);
            }
            auto bytes = read_file(dir_ / std::string(name), core::kMaxTzifBytes);
            if (!bytes) {
                return fail(bytes.error().code,
                            "time zone \"" + std::string(name) + "\": " + bytes.error().message);
            }
            const std::span<const std::uint8_t> view(
                reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size());
            auto tz = core::parse_tzif(view);
            if (!tz) {
                return fail(tz.error().code,
                            "time zone \"" + std::string(name) + "\": " + tz.error().message);
            }
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
