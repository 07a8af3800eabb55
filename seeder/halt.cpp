#include "seeder/halt.hpp"

#include "core/manifest.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/report.hpp"

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

}  // namespace patchswarm::seeder
