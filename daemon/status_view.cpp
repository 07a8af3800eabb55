#include "daemon/status_view.hpp"

#include <sstream>

#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"
#include "daemon/endpoint_store.hpp"
#include "io/key_files.hpp"
#include "io/term.hpp"

namespace patchswarm::daemon {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// state.db of `state_dir`, opened when there is one: a missing file is not created.
Result<std::unique_ptr<EndpointStore>> open_existing(const fs::path& state_dir) {
    if (!fs::exists(state_dir / "state.db")) {
        return fail(Errc::not_found, "no state in " + state_dir.string() +
                                         " (has patchswarmd run with this --state-dir?)");
    }
    return EndpointStore::open(state_dir / "state.db");
}

}  // namespace

Result<json> endpoint_status(const fs::path& state_dir) {
    auto store = open_existing(state_dir);
    if (!store) return std::unexpected(store.error());
    return endpoint_status(**store, state_dir);
}

Result<json> endpoint_status(EndpointStore& store, const fs::path& state_dir) {
    auto rows = store.load_releases();
    if (!rows) return std::unexpected(rows.error());
    json out = {{"format", 1}};
    if (auto pub = io::load_public_key(state_dir / "device.pub")) {
        out["device_id"] = core::device_id_for(*pub);
    }
    auto seq = store.get_meta("feed_sequence");
    out["feed_sequence"] = seq && *seq ? std::stoull(**seq) : 0ull;
    json releases = json::array();
    for (const auto& r : *rows) {
        const double total = static_cast<double>(r.bytes_total);
        releases.push_back(
            {{"id", r.record.id},
             {"sequence", r.sequence},
             {"state", core::to_string(r.record.state)},
             {"entered_at", r.record.entered_at},
             {"progress", total > 0 ? static_cast<double>(r.bytes_done) / total : 0.0},
             {"bytes_total", r.bytes_total},
             {"bytes_from_peers", r.bytes_from_peers},
             {"bytes_from_seeder", r.bytes_from_seeder},
             {"bytes_from_lan", r.bytes_from_lan},
             {"bytes_from_wan", r.bytes_from_wan},
             {"attempts", r.record.attempts},
             {"next_attempt_at", r.record.next_attempt_at},
             {"reason", r.record.reason}});
        auto deferred = store.deferral(r.record.id);
        releases.back()["deferred_until"] =
            deferred && *deferred ? json(**deferred) : json(nullptr);
    }
    out["releases"] = std::move(releases);
    json rejected = json::array();
    if (auto rej = store.load_rejected()) {
        for (const auto& r : *rej) {
            rejected.push_back({{"id", r.id},
                                {"manifest_sha256", r.manifest_sha256},
                                {"reason", r.reason},
                                {"at", r.at}});
        }
    }
    out["rejected_manifests"] = std::move(rejected);
    return out;
}

Result<std::int64_t> plan_deferral(const StoredRelease& release, std::int64_t until,
                                   std::int64_t now) {
    const auto state = release.record.state;
    if (state == core::State::effective || state == core::State::rejected) {
        return fail(Errc::invalid_argument, "release " + release.record.id + " is " +
                                                std::string(core::to_string(state)) +
                                                ": nothing left to defer");
    }
    if (until <= now) return fail(Errc::invalid_argument, "--until must lie in the future");
    // The stored manifest was verified when it was accepted; its deadline bounds the deferral.
    auto env = core::parse_envelope(release.manifest_envelope, core::kMaxManifestBytes * 2);
    if (env) {
        auto m = core::parse_manifest(std::string_view(
            reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
        if (m && m->rollout) return core::clamp_deferral(*m->rollout, until);
    }
    return until;
}

Result<std::optional<std::int64_t>> defer_release(EndpointStore& store, const std::string& id,
                                                  std::optional<std::int64_t> until,
                                                  std::int64_t now) {
    auto release = store.load_release(id);
    if (!release) return std::unexpected(release.error());
    if (!*release) {
        return fail(Errc::not_found,
                    "no release " + id + " on this endpoint (see patchswarmd status)");
    }
    if (!until) {
        if (auto ok = store.clear_deferral(id); !ok) return std::unexpected(ok.error());
        return std::optional<std::int64_t>{};
    }
    auto clamped = plan_deferral(**release, *until, now);
    if (!clamped) return std::unexpected(clamped.error());
    if (auto ok = store.set_deferral(id, *clamped, now); !ok) return std::unexpected(ok.error());
    return std::optional<std::int64_t>{*clamped};
}

Result<std::optional<std::int64_t>> defer_release(const fs::path& state_dir, const std::string& id,
                                                  std::optional<std::int64_t> until,
                                                  std::int64_t now) {
    auto store = open_existing(state_dir);
    if (!store) return std::unexpected(store.error());
    return defer_release(**store, id, until, now);
}

std::string render_endpoint_status(const json& s, bool tty) {
    std::ostringstream o;
    o << "device " << s.value("device_id", std::string("?")) << "  feed sequence "
      << s.value("feed_sequence", 0ull) << "\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-20s %-15s %-28s %12s %12s  %s\n", "RELEASE", "STATE",
                  "PROGRESS", "FROM PEERS", "FROM SEEDER", "REASON");
    o << line;
    for (const auto& r : s["releases"]) {
        std::snprintf(line, sizeof line, "%-20s %-15s %-28s %12s %12s  %s\n",
                      r["id"].get<std::string>().c_str(), r["state"].get<std::string>().c_str(),
                      io::term::progress_bar(r["progress"].get<double>(), 20, tty).c_str(),
                      io::term::human_bytes(r["bytes_from_peers"].get<std::uint64_t>()).c_str(),
                      io::term::human_bytes(r["bytes_from_seeder"].get<std::uint64_t>()).c_str(),
                      r["reason"].get<std::string>().substr(0, 80).c_str());
        o << line;
    }
    if (s["releases"].empty()) o << "(no releases yet)\n";
    for (const auto& r : s["rejected_manifests"]) {
        o << "rejected manifest for " << r["id"].get<std::string>() << ": "
          << r["reason"].get<std::string>() << "\n";
    }
    return o.str();
}

}  // namespace patchswarm::daemon
