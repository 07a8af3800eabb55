#include "core/manifest.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <unordered_set>
#include <utility>

#include "core/json_strict.hpp"

namespace patchswarm::core {

namespace {

using core::json_strict::Json;
using core::json_strict::ObjectReader;

constexpr std::array<std::pair<Severity, std::string_view>, 5> kSeverityNames{{
    {Severity::low, "low"},
    {Severity::normal, "normal"},
    {Severity::important, "important"},
    {Severity::critical, "critical"},
    {Severity::emergency, "emergency"},
}};

constexpr std::array<std::pair<RebootPolicy, std::string_view>, 3> kRebootNames{{
    {RebootPolicy::none, "none"},
    {RebootPolicy::required, "required"},
    {RebootPolicy::if_needed, "if_needed"},
}};

// Prefixes an error with the field it concerns.
std::unexpected<Error> at(std::string_view field, const Error& e) {
    return fail(e.code, std::string(field) + ": " + e.message);
}

bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

Result<void> validate_hash(std::string_view value, std::string_view field) {
    if (!core::json_strict::is_lower_hex(value, 64)) {
        return fail(Errc::malformed, std::string(field) + ": expected 64 lowercase hex digits");
    }
    return {};
}

Result<void> validate_command(const CommandLine& c, const std::string& field) {
    if (c.argv.empty()) return fail(Errc::malformed, field + ".argv: empty");
    if (c.argv.size() > kMaxArgs) {
        return fail(Errc::too_large, field + ".argv: more than " + std::to_string(kMaxArgs));
    }
    for (std::size_t i = 0; i < c.argv.size(); ++i) {
        const std::string where = field + ".argv[" + std::to_string(i) + "]";
        if (c.argv[i].size() > kMaxArgBytes) return fail(Errc::too_large, where + ": too long");
        // A NUL would silently cut the argument short when handed to execve.
        if (c.argv[i].find('\0') != std::string::npos) {
            return fail(Errc::malformed, where + ": contains NUL");
        }
    }
    if (c.argv[0].empty()) return fail(Errc::malformed, field + ".argv[0]: empty");
    if (c.timeout_s == 0 || c.timeout_s > kMaxTimeoutS) {
        return fail(Errc::malformed,
                    field + ".timeout_s: must be 1.." + std::to_string(kMaxTimeoutS));
    }
    return {};
}

// "a" listed as a file and "a/b" as another file cannot both be materialised; depending on the
// order of writes one would replace the other.
Result<void> validate_no_file_is_a_folder(const std::vector<FileEntry>& files) {
    std::unordered_set<std::string_view> paths;
    for (const auto& f : files) paths.insert(f.path);
    for (std::size_t i = 0; i < files.size(); ++i) {
        const std::string_view path = files[i].path;
        for (auto slash = path.find('/'); slash != std::string_view::npos;
             slash = path.find('/', slash + 1)) {
            if (paths.contains(path.substr(0, slash))) {
                return fail(Errc::unsafe_path, "manifest.files[" + std::to_string(i) +
                                                   "].path: its folder is also listed as a file");
            }
        }
    }
    return {};
}

Result<void> validate_file_entry(const FileEntry& f, const std::string& where) {
    if (auto r = validate_relative_path(f.path); !r) return at(where + ".path", r.error());
    if (f.size > kMaxPayloadBytes) return fail(Errc::too_large, where + ".size: too large");
    return validate_hash(f.sha256, where + ".sha256");
}

Result<void> validate_files(const std::vector<FileEntry>& files) {
    if (files.empty()) return fail(Errc::malformed, "manifest.files: empty");
    if (files.size() > kMaxFiles) {
        return fail(Errc::too_large, "manifest.files: more than " + std::to_string(kMaxFiles));
    }
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const std::string where = "manifest.files[" + std::to_string(i) + "]";
        if (auto r = validate_file_entry(files[i], where); !r) return r;
        // Sorted and unique gives one canonical form and makes duplicates adjacent.
        if (i > 0 && files[i - 1].path >= files[i].path) {
            return fail(Errc::malformed,
                        where + ".path: " +
                            (files[i - 1].path == files[i].path ? "duplicate path"
                                                                : "files not sorted by path"));
        }
        total += files[i].size;  // cannot wrap: each size is at most kMaxPayloadBytes
        if (total > kMaxPayloadBytes) {
            return fail(Errc::too_large, "manifest.files: total size over the bound");
        }
    }
    return validate_no_file_is_a_folder(files);
}

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

template <typename Enum, std::size_t N>
Enum read_enum(ObjectReader& r, std::string_view key,
               const std::array<std::pair<Enum, std::string_view>, N>& names) {
    const std::string text = r.string(key);
    if (!r.ok()) return names[0].first;
    for (const auto& [value, name] : names) {
        if (name == text) return value;
    }
    r.fail_at(r.field(key), Errc::malformed, "unknown value \"" + text + "\"");
    return names[0].first;
}

// Read first and on its own, so that a future format is reported as such rather than as a
// list of unknown fields.
int read_format(ObjectReader& r) {
    const std::uint64_t format = r.u64("format");
    if (r.ok() && format != 1) {
        r.fail_at(r.field("format"), Errc::malformed,
                  "unsupported format " + std::to_string(format));
    }
    return 1;
}

CommandLine read_command(ObjectReader& parent, std::string_view key, std::optional<Error>& err) {
    CommandLine c;
    const Json* v = parent.value(key);
    if (!v) return c;
    ObjectReader r(*v, parent.field(key), err);
    r.allow_only({"argv", "timeout_s"});
    if (const Json* argv = r.array("argv", kMaxArgs)) {
        for (std::size_t i = 0; i < argv->size(); ++i) {
            c.argv.push_back(r.as_string((*argv)[i], r.field("argv[" + std::to_string(i) + "]")));
        }
    }
    const std::uint64_t timeout = r.u64("timeout_s");
    if (r.ok() && (timeout == 0 || timeout > kMaxTimeoutS)) {
        r.fail_at(r.field("timeout_s"), Errc::malformed,
                  "must be 1.." + std::to_string(kMaxTimeoutS));
    }
    c.timeout_s = static_cast<std::uint32_t>(timeout);
    return c;
}

FileEntry read_file_entry(const Json& v, std::string where, std::optional<Error>& err) {
    ObjectReader r(v, std::move(where), err);
    r.allow_only({"path", "size", "sha256"});
    FileEntry f;
    f.path = r.string("path");
    f.size = r.u64("size");
    f.sha256 = r.string("sha256");
    return f;
}

// A decimal number in JSON (integer or fraction) as an integer count of 1/scale units, e.g.
// 0.95 with scale 10000 -> 9500. Refuses negative, non-finite and over-precise numbers, and
// anything above max_units.
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

Rollout read_rollout_value(const Json& v, std::string where, std::optional<Error>& err) {
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

Rollout read_rollout(ObjectReader& parent, std::optional<Error>& err) {
    const Json* v = parent.value("rollout");
    if (!v) return {};
    return read_rollout_value(*v, parent.field("rollout"), err);
}

Manifest decode_manifest(const Json& doc, std::optional<Error>& err) {
    ObjectReader r(doc, "manifest", err);
    Manifest m;
    m.format = read_format(r);
    r.allow_only({"format", "repository", "id", "sequence", "created", "expires", "severity",
                  "name", "files", "infohash_v2", "install", "verify", "reboot", "rollout"});
    m.repository = r.string("repository");
    m.id = r.string("id");
    m.sequence = r.u64("sequence");
    m.created = r.i64("created");
    m.expires = r.i64("expires");
    m.severity = read_enum(r, "severity", kSeverityNames);
    m.name = r.string("name");
    if (const Json* files = r.array("files", kMaxFiles)) {
        m.files.reserve(files->size());
        for (std::size_t i = 0; i < files->size() && r.ok(); ++i) {
            m.files.push_back(
                read_file_entry((*files)[i], "manifest.files[" + std::to_string(i) + "]", err));
        }
    }
    m.infohash_v2 = r.string("infohash_v2");
    m.install = read_command(r, "install", err);
    if (r.has("verify")) m.verify = read_command(r, "verify", err);
    m.reboot = read_enum(r, "reboot", kRebootNames);
    if (r.has("rollout")) m.rollout = read_rollout(r, err);
    return m;
}

Json command_json(const CommandLine& c) {
    Json j;
    j["argv"] = c.argv;
    j["timeout_s"] = c.timeout_s;
    return j;
}

// Integer when whole, else the shortest decimal that parses back to the same double: 9500 with
// scale 10000 -> 0.95; 10000 -> 1.
Json scaled_json(std::uint32_t units, std::uint32_t scale) {
    if (units % scale == 0) return Json(units / scale);
    return Json(static_cast<double>(units) / scale);
}

Json rollout_json(const Rollout& rollout) {
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

}  // namespace

std::string_view to_string(Severity s) {
    for (const auto& [value, name] : kSeverityNames) {
        if (value == s) return name;
    }
    return "unknown";
}

std::string_view to_string(RebootPolicy p) {
    for (const auto& [value, name] : kRebootNames) {
        if (value == p) return name;
    }
    return "unknown";
}

std::optional<Severity> parse_severity(std::string_view text) {
    for (const auto& [value, name] : kSeverityNames) {
        if (name == text) return value;
    }
    return std::nullopt;
}

std::optional<RebootPolicy> parse_reboot_policy(std::string_view text) {
    for (const auto& [value, name] : kRebootNames) {
        if (name == text) return value;
    }
    return std::nullopt;
}

std::uint64_t Manifest::total_size() const {
    std::uint64_t total = 0;
    for (const auto& f : files) {
        const std::uint64_t room = std::numeric_limits<std::uint64_t>::max() - total;
        total += std::min(f.size, room);
    }
    return total;
}

Result<void> validate_relative_path(std::string_view path) {
    if (path.empty()) return fail(Errc::unsafe_path, "empty path");
    if (path.size() > kMaxPathBytes) return fail(Errc::too_large, "path too long");
    if (path.front() == '/') return fail(Errc::unsafe_path, "absolute path");
    for (unsigned char c : path) {
        if (c == '\\') return fail(Errc::unsafe_path, "backslash in path");
        if (c < 0x20 || c == 0x7f) return fail(Errc::unsafe_path, "control character in path");
    }
    std::size_t depth = 0;
    std::size_t start = 0;
    for (;;) {
        const std::size_t slash = path.find('/', start);
        const std::string_view part = path.substr(start, slash - start);
        if (part.empty() || part == "." || part == "..") {
            return fail(Errc::unsafe_path, "empty, \".\" or \"..\" path component");
        }
        if (part.size() > kMaxPathComponentBytes) {
            return fail(Errc::too_large, "path component too long");
        }
        if (++depth > kMaxPathDepth) return fail(Errc::too_large, "path too deep");
        if (slash == std::string_view::npos) return {};
        start = slash + 1;
    }
}

Result<void> validate_release_id(std::string_view id) {
    if (id.size() > kMaxIdBytes) return fail(Errc::too_large, "longer than 64 bytes");
    if (id.empty() || !std::all_of(id.begin(), id.end(), is_id_char)) {
        return fail(Errc::malformed, "must match [A-Za-z0-9._-]{1,64}");
    }
    if (id == "." || id == "..") return fail(Errc::unsafe_path, "\".\" and \"..\" are not allowed");
    return {};
}

Result<void> validate_manifest(const Manifest& m) {
    if (m.format != 1) return fail(Errc::malformed, "manifest.format: unsupported");
    if (auto r = validate_release_id(m.repository); !r) {
        return at("manifest.repository", r.error());
    }
    if (auto r = validate_release_id(m.id); !r) return at("manifest.id", r.error());
    if (m.expires <= m.created) {
        return fail(Errc::malformed, "manifest.expires: not after manifest.created");
    }
    // The torrent name is one folder entry: a path of one component.
    if (auto r = validate_relative_path(m.name); !r) return at("manifest.name", r.error());
    if (m.name.find('/') != std::string::npos) {
        return fail(Errc::unsafe_path, "manifest.name: must be a single path component");
    }
    if (auto r = validate_files(m.files); !r) return r;
    if (auto r = validate_hash(m.infohash_v2, "manifest.infohash_v2"); !r) return r;
    if (auto r = validate_command(m.install, "manifest.install"); !r) return r;
    if (m.verify) {
        if (auto r = validate_command(*m.verify, "manifest.verify"); !r) return r;
    }
    if (m.rollout) return validate_rollout(*m.rollout, m.created, m.expires);
    return {};
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

std::string serialize_manifest(const Manifest& m) {
    Json j;
    j["format"] = m.format;
    j["repository"] = m.repository;
    j["id"] = m.id;
    j["sequence"] = m.sequence;
    j["created"] = m.created;
    j["expires"] = m.expires;
    j["severity"] = to_string(m.severity);
    j["name"] = m.name;
    j["files"] = Json::array();
    for (const auto& f : m.files) {
        Json entry;
        entry["path"] = f.path;
        entry["size"] = f.size;
        entry["sha256"] = f.sha256;
        j["files"].push_back(std::move(entry));
    }
    j["infohash_v2"] = m.infohash_v2;
    j["install"] = command_json(m.install);
    if (m.verify) j["verify"] = command_json(*m.verify);
    j["reboot"] = to_string(m.reboot);
    // Only when present: a manifest without a rollout serialises exactly as before.
    if (m.rollout) j["rollout"] = rollout_json(*m.rollout);
    return core::json_strict::dump(j);
}

Result<Manifest> parse_manifest(std::string_view json) {
    if (json.size() > kMaxManifestBytes) {
        return fail(Errc::too_large,
                    "manifest larger than " + std::to_string(kMaxManifestBytes) + " bytes");
    }
    auto doc = core::json_strict::parse(json, "manifest");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    Manifest m = decode_manifest(*doc, err);
    if (err) return std::unexpected(*err);
    if (auto r = validate_manifest(m); !r) return std::unexpected(r.error());
    return m;
}

Result<Rollout> parse_rollout(std::string_view json) {
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
    return core::json_strict::dump(rollout_json(r));
}

Result<void> check_manifest_fresh(const Manifest& m, std::int64_t now_unix) {
    if (now_unix >= m.expires) {
        return fail(Errc::expired, "manifest " + m.id + " expired at " + std::to_string(m.expires));
    }
    return {};
}

}  // namespace patchswarm::core
