#include "core/root.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>

#include "core/json_strict.hpp"

namespace patchswarm::core {

namespace {

using core::json_strict::Json;
using core::json_strict::ObjectReader;

RoleKeys read_role(ObjectReader& roles_reader, std::string_view name, std::optional<Error>& err) {
    RoleKeys role;
    const Json* v = roles_reader.value(name);
    if (!v) return role;
    ObjectReader r(*v, roles_reader.field(name), err);
    r.allow_only({"keyids", "threshold"});
    if (const Json* ids = r.array("keyids", kMaxRootKeys)) {
        for (std::size_t i = 0; i < ids->size(); ++i) {
            role.keyids.push_back(
                r.as_string((*ids)[i], r.field("keyids") + "[" + std::to_string(i) + "]"));
        }
    }
    const std::uint64_t threshold = r.u64("threshold");
    if (r.ok() && threshold > kMaxRootKeys) {
        r.fail_at(r.field("threshold"), Errc::malformed, "larger than the number of keys");
    }
    role.threshold = static_cast<std::uint32_t>(threshold);
    return role;
}

RootDocument decode_root(const Json& doc, std::optional<Error>& err) {
    ObjectReader r(doc, "root", err);
    RootDocument d;
    const std::uint64_t format = r.u64("format");
    if (r.ok() && format != 1) {
        r.fail_at(r.field("format"), Errc::malformed,
                  "unsupported format " + std::to_string(format));
    }
    r.allow_only({"format", "version", "expires", "keys", "roles"});
    d.version = r.u64("version");
    d.expires = r.i64("expires");
    if (const Json* keys = r.value("keys")) {
        if (!keys->is_object()) {
            r.fail_at(r.field("keys"), Errc::malformed, "expected an object");
        } else if (keys->size() > kMaxRootKeys) {
            r.fail_at(r.field("keys"), Errc::too_large,
                      "more than " + std::to_string(kMaxRootKeys) + " keys");
        } else {
            for (const auto& item : keys->items()) {
                d.keys[item.key()] = r.as_string(item.value(), r.field("keys") + "." + item.key());
            }
        }
    }
    if (const Json* roles = r.value("roles")) {
        ObjectReader roles_reader(*roles, r.field("roles"), err);
        roles_reader.allow_only({"root", "release", "feed"});
        d.root = read_role(roles_reader, "root", err);
        d.release = read_role(roles_reader, "release", err);
        d.feed = read_role(roles_reader, "feed", err);
    }
    return d;
}

Result<void> validate_role(const RootDocument& r, const RoleKeys& role, std::string_view name) {
    const std::string where = "root.roles." + std::string(name);
    if (role.keyids.empty()) return fail(Errc::malformed, where + ".keyids: empty");
    if (!std::is_sorted(role.keyids.begin(), role.keyids.end()) ||
        std::adjacent_find(role.keyids.begin(), role.keyids.end()) != role.keyids.end()) {
        // One canonical form, and no key listed twice to look like two.
        return fail(Errc::malformed, where + ".keyids: not sorted and unique");
    }
    for (const auto& id : role.keyids) {
        if (!r.keys.contains(id)) return fail(Errc::malformed, where + ": unknown key id " + id);
    }
    if (role.threshold < 1 || role.threshold > role.keyids.size()) {
        return fail(Errc::malformed,
                    where + ".threshold: must be 1.." + std::to_string(role.keyids.size()));
    }
    if (role.threshold > kMaxThreshold) {
        return fail(Errc::malformed,
                    where + ".threshold: at most " + std::to_string(kMaxThreshold));
    }
    return {};
}

}  // namespace

std::string serialize_root(const RootDocument& r) {
    Json j;
    j["format"] = r.format;
    j["version"] = r.version;
    j["expires"] = r.expires;
    j["keys"] = Json::object();
    for (const auto& [id, key] : r.keys) j["keys"][id] = key;  // std::map: sorted ids
    auto role = [](const RoleKeys& k) {
        Json o;
        o["keyids"] = k.keyids;
        o["threshold"] = k.threshold;
        return o;
    };
    j["roles"]["root"] = role(r.root);
    j["roles"]["release"] = role(r.release);
    j["roles"]["feed"] = role(r.feed);
    return core::json_strict::dump(j);
}

Result<void> validate_root(const RootDocument& r) {
    if (r.format != 1) return fail(Errc::malformed, "root.format: unsupported");
    if (r.version < 1) return fail(Errc::malformed, "root.version: must be >= 1");
    if (r.keys.size() > kMaxRootKeys) {
        return fail(Errc::too_large, "root.keys: more than " + std::to_string(kMaxRootKeys));
    }
    for (const auto& [id, key_hex] : r.keys) {
        auto raw = crypto::from_hex(key_hex);
        if (!core::json_strict::is_lower_hex(key_hex, 64) || !raw || raw->size() != 32) {
            return fail(Errc::malformed, "root.keys." + id + ": expected 64 lowercase hex digits");
        }
        crypto::PublicKey key{};
        std::copy(raw->begin(), raw->end(), key.begin());
        if (crypto::key_id(key) != id) {
            return fail(Errc::malformed, "root.keys." + id + ": id is not the key's SHA-256");
        }
    }
    if (auto ok = validate_role(r, r.root, "root"); !ok) return ok;
    if (auto ok = validate_role(r, r.release, "release"); !ok) return ok;
    if (auto ok = validate_role(r, r.feed, "feed"); !ok) return ok;
    const std::set<std::string> offline = [&] {
        std::set<std::string> s(r.root.keyids.begin(), r.root.keyids.end());
        s.insert(r.release.keyids.begin(), r.release.keyids.end());
        return s;
    }();
    for (const auto& id : r.feed.keyids) {
        if (offline.contains(id)) {
            // The feed key sits on an online server; if it could also sign manifests or roots,
            // stealing it would be enough to ship a release.
            return fail(Errc::malformed,
                        "root.roles.feed: key " + id + " is also a root or release key");
        }
    }
    return {};
}

Result<RootDocument> parse_root(std::string_view json) {
    if (json.size() > kMaxRootBytes) {
        return fail(Errc::too_large,
                    "root larger than " + std::to_string(kMaxRootBytes) + " bytes");
    }
    auto doc = core::json_strict::parse(json, "root");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    RootDocument r = decode_root(*doc, err);
    if (err) return std::unexpected(*err);
    if (auto ok = validate_root(r); !ok) return std::unexpected(ok.error());
    return r;
}

Result<void> check_root_fresh(const RootDocument& r, std::int64_t now_unix) {
    if (now_unix >= r.expires) {
        return fail(Errc::expired, "root version " + std::to_string(r.version) + " expired at " +
                                       std::to_string(r.expires));
    }
    return {};
}

KeySet key_set(const RootDocument& r, const RoleKeys& role) {
    KeySet set;
    set.threshold = role.threshold;
    for (const auto& id : role.keyids) {
        const auto it = r.keys.find(id);
        if (it == r.keys.end()) continue;
        auto raw = crypto::from_hex(it->second);
        if (!raw || raw->size() != 32) continue;
        crypto::PublicKey key{};
        std::copy(raw->begin(), raw->end(), key.begin());
        set.keys.push_back(key);
    }
    return set;
}

RoleKeys add_role_keys(RootDocument& r, std::span<const crypto::PublicKey> keys,
                       std::uint32_t threshold) {
    RoleKeys role;
    role.threshold = threshold;
    for (const auto& key : keys) {
        const std::string id = crypto::key_id(key);
        r.keys[id] = crypto::to_hex(key);
        role.keyids.push_back(id);
    }
    std::sort(role.keyids.begin(), role.keyids.end());
    role.keyids.erase(std::unique(role.keyids.begin(), role.keyids.end()), role.keyids.end());
    return role;
}

std::string root_route(std::uint64_t version) {
    return "/v1/root/" + std::to_string(version) + ".json";
}

std::optional<std::uint64_t> root_route_version(std::string_view path) {
    constexpr std::string_view prefix = "/v1/root/";
    constexpr std::string_view suffix = ".json";
    if (!path.starts_with(prefix) || !path.ends_with(suffix)) return std::nullopt;
    const std::string_view digits =
        path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.size() > 19 || digits[0] == '0') return std::nullopt;
    std::uint64_t v = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return std::nullopt;
    }
    return v;
}

}  // namespace patchswarm::core
