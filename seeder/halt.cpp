#include "seeder/halt.hpp"

#include "core/feed.hpp"
#include "core/json_strict.hpp"
#include "core/manifest.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/report.hpp"
#include "seeder/status_model.hpp"

namespace patchswarm::seeder {

namespace {

Result<core::FeedEntry> published_entry(const RepoPaths& paths, const std::string& id) {
    if (auto ok = core::validate_release_id(id); !ok) {
        return fail(Errc::invalid_argument, "release id '" + id + "': " + ok.error().message);
    }
    auto info = load_repo_info(paths);
    if (!info) return std::unexpected(info.error());
    auto index = load_index(paths);
    if (!index) return std::unexpected(index.error());
    for (const auto& e : index->releases) {
        if (e.id == id) return e;
    }
    return fail(Errc::not_found, "no release " + id + " in " + paths.root().string());
}

}  // namespace

Result<void> halt_release(const RepoPaths& paths, const std::string& id, const std::string& reason,
                          std::int64_t now) {
    auto entry = published_entry(paths, id);
    if (!entry) return std::unexpected(entry.error());
    if (reason.size() > kMaxReasonBytes) {
        return fail(Errc::invalid_argument,
                    "--reason longer than " + std::to_string(kMaxReasonBytes) + " bytes");
    }
    auto db = FleetDb::open(paths.fleet_db());
    if (!db) return fail(db.error().code, "fleet.db: " + db.error().message);
    return (*db)->halt(id, entry->manifest_sha256,
                       reason.empty() ? "halted by hand" : "halted by hand: " + reason, "manual",
                       now);
}

Result<void> resume_release(const RepoPaths& paths, const std::string& id, std::int64_t now) {
    auto entry = published_entry(paths, id);
    if (!entry) return std::unexpected(entry.error());
    auto db = FleetDb::open(paths.fleet_db());
    if (!db) return fail(db.error().code, "fleet.db: " + db.error().message);
    return (*db)->resume(id, now);
}

Result<RetryOutcome> retry_release(const RepoPaths& paths, const std::string& id,
                                   const RetryScope& scope, std::int64_t now) {
    auto entry = published_entry(paths, id);
    if (!entry) return std::unexpected(entry.error());
    RetryOutcome out;
    if (scope.device) {
        if (!core::json_strict::is_lower_hex(*scope.device, core::kDeviceIdHexChars)) {
            return fail(Errc::invalid_argument,
                        "--device: expected a device id, 32 lowercase hex digits");
        }
        out.devices = {*scope.device};
    } else if (scope.site) {
        auto status = collect_status(paths, nullptr, now);
        if (!status) return std::unexpected(status.error());
        for (const auto& rs : status->releases) {
            if (rs.id != id) continue;
            for (const auto& e : rs.all) {
                if (e.site == *scope.site && e.last_state == "failed")
                    out.devices.push_back(e.device_id);
            }
        }
        if (out.devices.empty()) {
            return fail(Errc::not_found, "no failed endpoint of " + id + " at site " + *scope.site);
        }
        if (out.devices.size() > core::kMaxRetryDevices) {
            return fail(Errc::too_large,
                        std::to_string(out.devices.size()) + " failed endpoints at site " +
                            *scope.site + ", more than one request holds (" +
                            std::to_string(core::kMaxRetryDevices) + "): use --failed");
        }
    }
    auto db = FleetDb::open(paths.fleet_db());
    if (!db) return fail(db.error().code, "fleet.db: " + db.error().message);
    auto generation = (*db)->request_retry(id, entry->manifest_sha256, out.devices, now);
    if (!generation) return std::unexpected(generation.error());
    out.generation = *generation;
    return out;
}

std::string retry_command(const std::string& repo, const std::string& id,
                          std::string_view scope_flag, std::string_view scope_value) {
    std::string cmd =
        "patchswarm-seeder retry " + id + " --repo " + repo + " " + std::string(scope_flag);
    if (!scope_value.empty()) cmd += " " + std::string(scope_value);
    return cmd;
}

}  // namespace patchswarm::seeder
