#include "daemon/status_view.hpp"

#include <sstream>

#include "common/term.hpp"
#include "crypto/crypto.hpp"
#include "daemon/endpoint_store.hpp"

namespace patchswarm::daemon {
namespace fs = std::filesystem;
using nlohmann::json;

Result<json> endpoint_status(const fs::path& state_dir) {
    if (!fs::exists(state_dir / "state.db")) {
        return fail(Errc::not_found, "no state in " + state_dir.string() +
                                         " (has patchswarmd run with this --state-dir?)");
    }
    auto store = EndpointStore::open(state_dir / "state.db");
    if (!store) return std::unexpected(store.error());
    auto rows = (*store)->load_releases();
    if (!rows) return std::unexpected(rows.error());
    json out = {{"format", 1}};
    if (auto pub = crypto::load_public_key(state_dir / "device.pub")) {
        out["device_id"] = crypto::key_id(*pub).substr(0, 32);
    }
    auto seq = (*store)->get_meta("feed_sequence");
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
    }
    out["releases"] = std::move(releases);
    json rejected = json::array();
    if (auto rej = (*store)->load_rejected()) {
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
                      term::progress_bar(r["progress"].get<double>(), 20, tty).c_str(),
                      term::human_bytes(r["bytes_from_peers"].get<std::uint64_t>()).c_str(),
                      term::human_bytes(r["bytes_from_seeder"].get<std::uint64_t>()).c_str(),
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
