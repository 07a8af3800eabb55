#include "core/feed.hpp"

#include <algorithm>
#include <optional>
#include <unordered_set>

#include "core/json_strict.hpp"
#include "core/manifest.hpp"

namespace patchswarm::core {

namespace {

using core::json_strict::Json;
using core::json_strict::ObjectReader;

std::unexpected<Error> at(const std::string& field, const Error& e) {
    return fail(e.code, field + ": " + e.message);
}

// A future format is reported as such, before its unknown
// fields are.
void require_format_1(ObjectReader& r) {
    const std::uint64_t format = r.u64("format");
    if (r.ok() && format != 1) {
        r.fail_at(r.field("format"), Errc::malformed,
                  "unsupported format " + std::to_string(format));
    }
}

FeedEntry read_feed_entry(const Json& v, std::string where, std::optional<Error>& err) {
    ObjectReader r(v, std::move(where), err);
    r.allow_only({"id", "sequence", "manifest_sha256", "open_rings", "retry"});
    FeedEntry e;
    e.id = r.string("id");
    e.sequence = r.u64("sequence");
    e.manifest_sha256 = r.string("manifest_sha256");
    if (r.has("open_rings")) {
        // Bounded before the narrowing: validate_feed_entry checks the range of the result.
        const std::uint64_t open = r.u64("open_rings");
        e.open_rings = static_cast<std::uint32_t>(std::min<std::uint64_t>(open, 0xffffffffu));
    }
    if (r.has("retry") && r.ok()) {
        ObjectReader retry(*r.value("retry"), r.field("retry"), err);
        retry.allow_only({"generation", "devices"});
        RetryRequest req;
        const std::uint64_t generation = retry.u64("generation");
        req.generation =
            static_cast<std::uint32_t>(std::min<std::uint64_t>(generation, 0xffffffffu));
        if (retry.has("devices")) {
            if (const Json* devices = retry.array("devices", kMaxRetryDevices)) {
                for (std::size_t i = 0; i < devices->size() && retry.ok(); ++i) {
                    req.devices.push_back(retry.as_string(
                        (*devices)[i], retry.field("devices[" + std::to_string(i) + "]")));
                }
            }
        }
        e.retry = std::move(req);
    }
    return e;
}

Feed decode_feed(const Json& doc, std::optional<Error>& err) {
    ObjectReader r(doc, "feed", err);
    Feed f;
    require_format_1(r);
    r.allow_only({"format", "repository", "sequence", "issued", "expires", "releases", "halted"});
    f.repository = r.string("repository");
    f.sequence = r.u64("sequence");
    f.issued = r.i64("issued");
    f.expires = r.i64("expires");
    if (const Json* releases = r.array("releases", kMaxFeedReleases)) {
        for (std::size_t i = 0; i < releases->size() && r.ok(); ++i) {
            f.releases.push_back(
                read_feed_entry((*releases)[i], "feed.releases[" + std::to_string(i) + "]", err));
        }
    }
    if (const Json* halted = r.array("halted", kMaxFeedReleases)) {
        for (std::size_t i = 0; i < halted->size(); ++i) {
            f.halted.push_back(r.as_string((*halted)[i], "feed.halted[" + std::to_string(i) + "]"));
        }
    }
    return f;
}

Result<void> validate_feed_entry(const FeedEntry& e, const std::string& where) {
    if (auto r = validate_release_id(e.id); !r) return at(where + ".id", r.error());
    if (!core::json_strict::is_lower_hex(e.manifest_sha256, 64)) {
        return fail(Errc::malformed, where + ".manifest_sha256: expected 64 lowercase hex digits");
    }
    if (e.open_rings && (*e.open_rings == 0 || *e.open_rings > kMaxOpenRings)) {
        return fail(Errc::malformed,
                    where + ".open_rings: must be 1.." + std::to_string(kMaxOpenRings));
    }
    if (e.retry) {
        if (e.retry->generation == 0 || e.retry->generation == 0xffffffffu) {
            return fail(Errc::malformed, where + ".retry.generation: must be 1..4294967294");
        }
        if (e.retry->devices.size() > kMaxRetryDevices) {
            return fail(Errc::too_large,
                        where + ".retry.devices: more than " + std::to_string(kMaxRetryDevices));
        }
        std::unordered_set<std::string_view> seen;
        for (std::size_t i = 0; i < e.retry->devices.size(); ++i) {
            const std::string at_i = where + ".retry.devices[" + std::to_string(i) + "]";
            if (!core::json_strict::is_lower_hex(e.retry->devices[i], 32)) {
                return fail(Errc::malformed, at_i + ": expected 32 lowercase hex digits");
            }
            if (!seen.insert(e.retry->devices[i]).second) {
                return fail(Errc::malformed, at_i + ": duplicate device id");
            }
        }
    }
    return {};
}

// Each id at most once: two entries for one id would leave the endpoint to guess which wins.
Result<void> validate_releases(const std::vector<FeedEntry>& releases) {
    if (releases.size() > kMaxFeedReleases) {
        return fail(Errc::too_large,
                    "feed.releases: more than " + std::to_string(kMaxFeedReleases));
    }
    std::unordered_set<std::string_view> seen;
    for (std::size_t i = 0; i < releases.size(); ++i) {
        const std::string where = "feed.releases[" + std::to_string(i) + "]";
        if (auto r = validate_feed_entry(releases[i], where); !r) return r;
        if (!seen.insert(releases[i].id).second) {
            return fail(Errc::malformed, where + ".id: duplicate release id");
        }
    }
    return {};
}

Result<void> validate_halted(const std::vector<std::string>& halted) {
    if (halted.size() > kMaxFeedReleases) {
        return fail(Errc::too_large, "feed.halted: more than " + std::to_string(kMaxFeedReleases));
    }
    std::unordered_set<std::string_view> seen;
    for (std::size_t i = 0; i < halted.size(); ++i) {
        const std::string where = "feed.halted[" + std::to_string(i) + "]";
        if (auto r = validate_release_id(halted[i]); !r) return at(where, r.error());
        if (!seen.insert(halted[i]).second) return fail(Errc::malformed, where + ": duplicate id");
    }
    return {};
}

}  // namespace

std::string serialize_feed(const Feed& f) {
    Json j;
    j["format"] = f.format;
    j["repository"] = f.repository;
    j["sequence"] = f.sequence;
    j["issued"] = f.issued;
    j["expires"] = f.expires;
    j["releases"] = Json::array();
    for (const auto& e : f.releases) {
        Json entry;
        entry["id"] = e.id;
        entry["sequence"] = e.sequence;
        entry["manifest_sha256"] = e.manifest_sha256;
        // Only when staged: a feed without rollouts serialises exactly as before.
        if (e.open_rings) entry["open_rings"] = *e.open_rings;
        if (e.retry) {
            Json retry;
            retry["generation"] = e.retry->generation;
            if (!e.retry->devices.empty()) retry["devices"] = e.retry->devices;
            entry["retry"] = std::move(retry);
        }
        j["releases"].push_back(std::move(entry));
    }
    j["halted"] = f.halted;
    return core::json_strict::dump(j);
}

Result<void> validate_feed(const Feed& f) {
    if (f.format != 1) return fail(Errc::malformed, "feed.format: unsupported");
    if (auto r = validate_release_id(f.repository); !r) return at("feed.repository", r.error());
    if (f.expires <= f.issued) return fail(Errc::malformed, "feed.expires: not after feed.issued");
    if (auto r = validate_releases(f.releases); !r) return r;
    return validate_halted(f.halted);
}

Result<Feed> parse_feed(std::string_view json) {
    if (json.size() > kMaxFeedBytes) {
        return fail(Errc::too_large,
                    "feed larger than " + std::to_string(kMaxFeedBytes) + " bytes");
    }
    auto doc = core::json_strict::parse(json, "feed");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> err;
    Feed f = decode_feed(*doc, err);
    if (err) return std::unexpected(*err);
    if (auto r = validate_feed(f); !r) return std::unexpected(r.error());
    return f;
}

Result<void> check_feed_fresh(const Feed& f, std::int64_t now_unix) {
    if (now_unix >= f.expires) {
        return fail(Errc::expired, "feed " + std::to_string(f.sequence) + " expired at " +
                                       std::to_string(f.expires));
    }
    return {};
}

}  // namespace patchswarm::core
