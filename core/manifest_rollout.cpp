// The manifest's rollout section (rings, maintenance windows, deadline): strict reading,
// validation and serialisation. The release fields are in manifest.cpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <unordered_set>
#include <utility>

#include "core/json_strict.hpp"
#include "core/manifest.hpp"
#include "core/manifest_detail.hpp"

namespace patchswarm::core {

namespace {

using core::json_strict::Json;
using core::json_strict::ObjectReader;
using manifest_detail::at;
using manifest_detail::is_id_char;

constexpr std::array<std::string_view, 7> kDayNames{"mon", "tue", "wed", "thu",
                                                    "fri", "sat", "sun"};

// Unique and non-empty strings, each checked by `check`; `what` names the list.
template <typename Check>
Result<void> validate_name_list(const std::vector<std::string>& names, std::size_t max_items,
                                const std::string& what, Check check) {
    if (names.size() > max_items) {
        return fail(Errc::too_large, what + ": more than " + std::to_string(max_items));
    }
    std::unordered_set<std::string_view> seen;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string where = what + "[" + std::to_string(i) + "]";
        if (auto r = check(names[i]); !r) return at(where, r.error());
        if (!seen.insert(names[i]).second) return fail(Errc::malformed, where + ": duplicate");
    }
    return {};
}

Result<void> validate_device_id(std::string_view id) {
    if (!core::json_strict::is_lower_hex(id, kDeviceIdHexChars)) {
        return fail(Errc::malformed, "expected 32 lowercase hex digits");
    }
    return {};
}

Result<void> validate_ring(const Ring& ring, const std::string& where) {
    if (auto r = validate_release_id(ring.name); !r) return at(where + ".name", r.error());
    if (auto r =
            validate_name_list(ring.groups, kMaxRingGroups, where + ".groups", validate_group_name);
        !r) {
        return r;
    }
    if (auto r = validate_name_list(ring.devices, kMaxRingDevices, where + ".devices",
                                    validate_device_id);
        !r) {
        return r;
    }
    if (ring.fleet_bp > kBasisPoints) {
        return fail(Errc::malformed, where + ".percent: must be at most 100");
    }
    if (ring.groups.empty() && ring.devices.empty() && ring.fleet_bp == 0) {
        return fail(Errc::malformed, where + ": selects nothing (give groups, devices or percent)");
    }
    if (ring.success_bp > kBasisPoints) {
        return fail(Errc::malformed, where + ".success_threshold: must be 0..1");
    }
    if (ring.soak_s < 0 || ring.soak_s > kMaxSoakS) {
        return fail(Errc::malformed, where + ".soak_s: must be 0.." + std::to_string(kMaxSoakS));
    }
    if (ring.max_failure_bp > kBasisPoints) {
        return fail(Errc::malformed, where + ".max_failure_rate: must be 0..1");
    }
    return {};
}

Result<void> validate_window(const Window& w, const std::string& where) {
    if (w.group != kAnyGroup) {
        if (auto r = validate_group_name(w.group); !r) return at(where + ".group", r.error());
    }
    if (w.days == 0 || (w.days & ~kAllDays) != 0) {
        return fail(Errc::malformed, where + ".days: must name at least one day");
    }
    if (w.start_min >= 24 * 60) {
        return fail(Errc::malformed, where + ".start: must be 00:00..23:59");
    }
    if (w.end_min == 0 || w.end_min > 24 * 60) {
        return fail(Errc::malformed, where + ".end: must be 00:01..24:00");
    }
    if (w.end_min == w.start_min) return fail(Errc::malformed, where + ".end: equals start");
    if (auto r = validate_zone_name(w.zone); !r) return at(where + ".tz", r.error());
    return {};
}

// "HH:MM" <-> minutes after midnight. Only the exact two-digit form is accepted, so that a
// window has one spelling.
std::optional<std::uint16_t> parse_hhmm(std::string_view text) {
    auto digit = [&](std::size_t i) { return text[i] >= '0' && text[i] <= '9'; };
    if (text.size() != 5 || text[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4)) {
        return std::nullopt;
    }
    const int hours = (text[0] - '0') * 10 + (text[1] - '0');
    const int minutes = (text[3] - '0') * 10 + (text[4] - '0');
    if (minutes > 59 || hours > 24 || (hours == 24 && minutes != 0)) return std::nullopt;
    return static_cast<std::uint16_t>(hours * 60 + minutes);
}

std::string format_hhmm(std::uint16_t minutes) {
    const auto two = [](int v) { return std::string{char('0' + v / 10), char('0' + v % 10)}; };
    return two(minutes / 60) + ":" + two(minutes % 60);
}

std::uint32_t read_scaled(ObjectReader& r, std::string_view key, std::uint32_t scale,
                          std::uint32_t max_units, std::string_view range) {
    const Json* v = r.value(key);
    if (!v) return 0;
    const std::string where = r.field(key);
    double units = 0;
    if (v->is_number_unsigned()) {
        const std::uint64_t whole = v->get<std::uint64_t>();
        if (whole > max_units / scale) {
            r.fail_at(where, Errc::malformed, "must be " + std::string(range));
            return 0;
        }
        return static_cast<std::uint32_t>(whole * scale);
    }
    if (v->is_number_float()) {
        units = v->get<double>() * scale;
    } else {
        r.fail_at(where, Errc::malformed,
                  v->is_number() ? "must be " + std::string(range) : "expected a number");
        return 0;
    }
    if (!std::isfinite(units) || units < 0 || units > max_units) {
        r.fail_at(where, Errc::malformed, "must be " + std::string(range));
        return 0;
    }
    const double rounded = std::round(units);
    if (std::fabs(units - rounded) > 1e-6) {
        r.fail_at(
            where, Errc::malformed,
            "more than " + std::to_string(static_cast<int>(std::log10(scale))) + " decimal places");
        return 0;
    }
    return static_cast<std::uint32_t>(rounded);
}

// Optional list of strings: absent is empty; present must be non-empty (one spelling only).
std::vector<std::string> read_string_list(ObjectReader& r, std::string_view key,
                                          std::size_t max_items) {
    std::vector<std::string> out;
    if (!r.has(key)) return out;
    const Json* list = r.array(key, max_items);
    if (!list) return out;
    if (list->empty()) {
        r.fail_at(r.field(key), Errc::malformed, "empty (omit it instead)");
        return out;
    }
    for (std::size_t i = 0; i < list->size() && r.ok(); ++i) {
        out.push_back(
            r.as_string((*list)[i], r.field(std::string(key) + "[" + std::to_string(i) + "]")));
    }
    return out;
}

Ring read_ring(const Json& v, std::string where, std::optional<Error>& err) {
    ObjectReader r(v, std::move(where), err);
    r.allow_only({"name", "groups", "devices", "percent", "success_threshold", "soak_s",
                  "max_failure_rate"});
    Ring ring;
    ring.name = r.string("name");
    ring.groups = read_string_list(r, "groups", kMaxRingGroups);
    ring.devices = read_string_list(r, "devices", kMaxRingDevices);
    if (r.has("percent")) {
        ring.fleet_bp = read_scaled(r, "percent", 100, kBasisPoints, "0..100");
        if (r.ok() && ring.fleet_bp == 0) {
            r.fail_at(r.field("percent"), Errc::malformed, "0 selects nothing (omit it instead)");
        }
    }
    ring.success_bp = read_scaled(r, "success_threshold", kBasisPoints, kBasisPoints, "0..1");
    ring.soak_s = r.i64("soak_s");
    ring.max_failure_bp = read_scaled(r, "max_failure_rate", kBasisPoints, kBasisPoints, "0..1");
    return ring;
}

std::uint8_t read_days(ObjectReader& r) {
    const Json* days = r.array("days", kDayNames.size());
    if (!days) return 0;
    std::uint8_t set = 0;
    int previous = -1;
    for (std::size_t i = 0; i < days->size() && r.ok(); ++i) {
        const std::string where = r.field("days[" + std::to_string(i) + "]");
        const std::string name = r.as_string((*days)[i], where);
        if (!r.ok()) break;
        const auto found = std::find(kDayNames.begin(), kDayNames.end(), name);
        if (found == kDayNames.end()) {
            r.fail_at(where, Errc::malformed, "unknown day \"" + name + "\" (mon..sun)");
            break;
        }
        const int day = static_cast<int>(found - kDayNames.begin());
        if (day <= previous) {
            r.fail_at(where, Errc::malformed,
                      day == previous ? "duplicate day" : "days not in week order (mon..sun)");
            break;
        }
        previous = day;
        set = static_cast<std::uint8_t>(set | (1u << day));
    }
    return set;
}

std::uint16_t read_time_of_day(ObjectReader& r, std::string_view key) {
    const std::string text = r.string(key);
    if (!r.ok()) return 0;
    const auto minutes = parse_hhmm(text);
    if (!minutes) {
        r.fail_at(r.field(key), Errc::malformed, "expected HH:MM (00:00..24:00)");
        return 0;
    }
    return *minutes;
}

Window read_window(const Json& v, std::string where, std::optional<Error>& err) {
    ObjectReader r(v, std::move(where), err);
    r.allow_only({"group", "days", "start", "end", "tz"});
    Window w;
    w.group = r.string("group");
    w.days = read_days(r);
    w.start_min = read_time_of_day(r, "start");
    w.end_min = read_time_of_day(r, "end");
    w.zone = r.string("tz");
    return w;
}

}  // namespace

Rollout manifest_detail::read_rollout_value(const Json& v, std::string where,
                                            std::optional<Error>& err) {
    Rollout out;
    ObjectReader r(v, std::move(where), err);
    r.allow_only({"rings", "deadline", "windows"});
    if (const Json* rings = r.array("rings", kMaxRings)) {
        for (std::size_t i = 0; i < rings->size() && r.ok(); ++i) {
            out.rings.push_back(
                read_ring((*rings)[i], r.field("rings[" + std::to_string(i) + "]"), err));
        }
    }
    if (r.has("deadline")) out.deadline = r.i64("deadline");
    if (const Json* windows = r.array("windows", kMaxWindows)) {
        for (std::size_t i = 0; i < windows->size() && r.ok(); ++i) {
            out.windows.push_back(
                read_window((*windows)[i], r.field("windows[" + std::to_string(i) + "]"), err));
        }
    }
    return out;
}

namespace {

// Integer when whole, else the shortest decimal that parses back to the same double: 9500 with
// scale 10000 -> 0.95; 10000 -> 1.
Json scaled_json(std::uint32_t units, std::uint32_t scale) {
    if (units % scale == 0) return Json(units / scale);
    return Json(static_cast<double>(units) / scale);
}

}  // namespace

Json manifest_detail::rollout_json(const Rollout& rollout) {
    Json j;
    j["rings"] = Json::array();
    for (const auto& ring : rollout.rings) {
        Json e;
        e["name"] = ring.name;
        if (!ring.groups.empty()) e["groups"] = ring.groups;
        if (!ring.devices.empty()) e["devices"] = ring.devices;
        if (ring.fleet_bp != 0) e["percent"] = scaled_json(ring.fleet_bp, 100);
        e["success_threshold"] = scaled_json(ring.success_bp, kBasisPoints);
        e["soak_s"] = ring.soak_s;
        e["max_failure_rate"] = scaled_json(ring.max_failure_bp, kBasisPoints);
        j["rings"].push_back(std::move(e));
    }
    if (rollout.deadline) j["deadline"] = *rollout.deadline;
    j["windows"] = Json::array();
    for (const auto& w : rollout.windows) {
        Json e;
        e["group"] = w.group;
        e["days"] = Json::array();
        for (std::size_t d = 0; d < kDayNames.size(); ++d) {
            if (w.days & (1u << d)) e["days"].push_back(kDayNames[d]);
        }
        e["start"] = format_hhmm(w.start_min);
        e["end"] = format_hhmm(w.end_min);
        e["tz"] = w.zone;
        j["windows"].push_back(std::move(e));
    }
    return j;
}

Result<void> validate_group_name(std::string_view group) {
    return validate_release_id(group);
}

Result<void> validate_zone_name(std::string_view zone) {
    if (zone.size() > kMaxZoneNameBytes) {
        return fail(Errc::too_large, "longer than " + std::to_string(kMaxZoneNameBytes) + " bytes");
    }
    std::size_t start = 0;
    for (;;) {
        const std::size_t slash = zone.find('/', start);
        const std::string_view part = zone.substr(start, slash - start);
        const bool letter_first = !part.empty() && ((part[0] >= 'A' && part[0] <= 'Z') ||
                                                    (part[0] >= 'a' && part[0] <= 'z'));
        const bool chars_ok =
            std::all_of(part.begin(), part.end(), [](char c) { return is_id_char(c) || c == '+'; });
        if (!letter_first || !chars_ok) {
            return fail(Errc::malformed, "not a time zone name like \"Europe/Berlin\"");
        }
        if (slash == std::string_view::npos) return {};
        start = slash + 1;
    }
}

Result<void> validate_rollout(const Rollout& r, std::int64_t created, std::int64_t expires) {
    if (r.rings.size() > kMaxRings) {
        return fail(Errc::too_large,
                    "manifest.rollout.rings: more than " + std::to_string(kMaxRings));
    }
    std::unordered_set<std::string_view> names;
    for (std::size_t i = 0; i < r.rings.size(); ++i) {
        const std::string where = "manifest.rollout.rings[" + std::to_string(i) + "]";
        if (auto v = validate_ring(r.rings[i], where); !v) return v;
        if (!names.insert(r.rings[i].name).second) {
            return fail(Errc::malformed, where + ".name: duplicate ring name");
        }
    }
    // A deadline outside the manifest's lifetime is a publisher's mistake: before `created` it
    // would void every window at once, after `expires` it could never apply.
    if (r.deadline && (*r.deadline < created || *r.deadline > expires)) {
        return fail(Errc::malformed,
                    "manifest.rollout.deadline: must lie between manifest.created and "
                    "manifest.expires");
    }
    if (r.windows.size() > kMaxWindows) {
        return fail(Errc::too_large,
                    "manifest.rollout.windows: more than " + std::to_string(kMaxWindows));
    }
    for (std::size_t i = 0; i < r.windows.size(); ++i) {
        const std::string where = "manifest.rollout.windows[" + std::to_string(i) + "]";
        if (auto v = validate_window(r.windows[i], where); !v) return v;
    }
    return {};
}

Result<Rollout> parse_rollout(std::string_view json) {
    using manifest_detail::read_rollout_value;
    if (json.size() > kMaxManifestBytes) {
        return fail(Errc::too_large,
                    "rollout larger than " + std::to_string(kMaxManifestBytes) + " bytes");
    }
    auto doc = core::json_strict::parse(json, "rollout");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    Rollout r = read_rollout_value(*doc, "rollout", err);
    if (err) return std::unexpected(*err);
    return r;
}

std::string serialize_rollout(const Rollout& r) {
    return core::json_strict::dump(manifest_detail::rollout_json(r));
}

}  // namespace patchswarm::core
