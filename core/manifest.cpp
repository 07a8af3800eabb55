#include "core/manifest.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <unordered_set>
#include <utility>

#include "core/json_strict.hpp"
#include "core/manifest_detail.hpp"
#include "core/path_rules.hpp"

namespace patchswarm::core {

namespace {

using core::json_strict::Json;
using core::json_strict::ObjectReader;
using manifest_detail::at;
using manifest_detail::is_id_char;

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

// Windows opens "Setup.exe" for "setup.exe": two such entries would overwrite each other there.
Result<void> validate_no_case_collision(const std::vector<FileEntry>& files) {
    std::vector<std::string_view> paths(files.size());
    std::transform(files.begin(), files.end(), paths.begin(),
                   [](const FileEntry& f) { return std::string_view(f.path); });
    if (auto c = find_case_collision(paths)) {
        return fail(Errc::unsafe_path,
                    "manifest.files[" + std::to_string(c->second) + "].path: \"" + c->second_name +
                        "\" and \"" + c->first_name + "\" (manifest.files[" +
                        std::to_string(c->first) + "]) differ only in case, one name on Windows");
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
    if (auto r = validate_no_file_is_a_folder(files); !r) return r;
    return validate_no_case_collision(files);
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
using manifest_detail::read_rollout_value;
using manifest_detail::rollout_json;

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
                  "name", "files", "infohash_v2", "install", "verify", "reboot", "rollout",
                  "idempotent"});
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
    if (r.has("idempotent")) {
        const Json* v = r.value("idempotent");
        // Only `true` is written; `false` would be a second encoding of the default.
        if (v && !(v->is_boolean() && v->get<bool>())) {
            r.fail_at(r.field("idempotent"), Errc::malformed, "expected true (or absent)");
        }
        m.idempotent = r.ok();
    }
    return m;
}

Json command_json(const CommandLine& c) {
    Json j;
    j["argv"] = c.argv;
    j["timeout_s"] = c.timeout_s;
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
    if (auto r = validate_windows_path(path); !r) return r;
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
    // The id names the release's folder on endpoints (releases/<id>), Windows ones included.
    // Checked here rather than in validate_release_id, so a feed that lists such an id still
    // delivers its other releases.
    if (auto r = validate_windows_component(m.id); !r) return at("manifest.id", r.error());
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
    if (m.idempotent) j["idempotent"] = true;
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

Result<void> check_manifest_fresh(const Manifest& m, std::int64_t now_unix) {
    if (now_unix >= m.expires) {
        return fail(Errc::expired, "manifest " + m.id + " expired at " + std::to_string(m.expires));
    }
    return {};
}

}  // namespace patchswarm::core
