#include "seeder/status_model.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"

namespace patchswarm::seeder {

namespace {

using core::State;

constexpr std::array kStates = {State::announced, State::downloading, State::verified,
                                State::waiting,   State::installing,  State::reboot_pending,
                                State::effective, State::failed,      State::rejected};

// What needs attention first: endpoints that gave up, then those that have not even started.
int attention_rank(std::string_view state) {
    static constexpr std::array<std::string_view, 11> order = {
        "rejected",       "failed",           "offline_not_patched",
        "unreported",     "announced",        "downloading",
        "verified",       "waiting",          "installing",
        "reboot_pending", "offline_effective"};
    const auto it = std::find(order.begin(), order.end(), state);
    return static_cast<int>(it - order.begin());
}

std::string percent_text(double fraction) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%d%%", static_cast<int>(fraction * 100.0));
    return buf;
}

// One line that says what still stands between an endpoint and `effective`.
std::string why_of(const EndpointStatus& e, std::int64_t now) {
    (void)now;
    const auto when = [](std::optional<std::int64_t> t) {
        return t ? core::format_utc(*t) : std::string("?");
    };
    if (e.state == kOfflineEffective) {
        return "offline since " + core::format_utc(e.last_seen) + ", last known effective" +
               (e.since ? " (since " + when(e.since) + ")" : std::string());
    }
    if (e.state == kOfflineNotPatched) {
        return "offline since " + core::format_utc(e.last_seen) + ", not patched (last state " +
               e.last_state + (e.since ? " since " + when(e.since) : std::string()) + ")";
    }
    if (e.state == kUnreported) {
        return "has not reported this release (last report " + core::format_utc(e.last_seen) + ")";
    }
    const std::string detail = e.reason.empty() ? "" : ": " + e.reason;
    if (e.state == "failed") {
        if (!e.next_attempt_at) {  // an agent that does not say whether it will try again
            return "failed (attempt " + std::to_string(e.attempts) + ")" + detail;
        }
        if (*e.next_attempt_at == 0 || (e.max_attempts && e.attempts >= *e.max_attempts)) {
            return "gave up after " + std::to_string(e.attempts) + " attempt" +
                   (e.attempts == 1 ? "" : "s") + detail;
        }
        return "failed, retry " + std::to_string(e.attempts + 1) +
               (e.max_attempts ? " of " + std::to_string(*e.max_attempts) : std::string()) +
               " at " + core::format_utc(*e.next_attempt_at) + detail;
    }
    if (e.state == "rejected") return "rejected" + detail;
    if (e.state == "reboot_pending") return "reboot pending since " + when(e.since) + detail;
    if (e.state == "waiting") {
        if (e.deferred_by && e.deferred_until) {
            return "deferred by " + *e.deferred_by + " until " +
                   core::format_utc(*e.deferred_until);
        }
        return e.reason.empty() ? "waiting since " + when(e.since) : e.reason;
    }
    if (e.state == "downloading") return "downloading, " + percent_text(e.progress) + " done";
    if (e.state == "effective") return "";
    return e.state + " since " + when(e.since);
}

ReleaseStatus release_status(const core::FeedEntry& entry, const ManifestFacts* facts,
                             const FleetSnapshot& fleet, const core::SiteMap& sites,
                             const RolloutState& rollout_state, std::int64_t now) {
    ReleaseStatus rs;
    rs.id = entry.id;
    rs.sequence = entry.sequence;
    rs.manifest_sha256 = entry.manifest_sha256;
    const core::Rollout* rollout = nullptr;
    if (facts) {
        rs.name = facts->name;
        rs.severity = facts->severity;
        rs.size = facts->size;
        if (facts->created != 0) rs.published_at = facts->created;
        if (facts->rollout) {
            rollout = &*facts->rollout;
            rs.deadline = facts->rollout->deadline;
        }
    }
    static const std::vector<std::int64_t> kNone;
    const auto opens = rollout_state.ring_opens.find(entry.id);
    const ReleaseRollout ro =
        evaluate_release(rollout, rs.published_at.value_or(0), entry.id, entry.manifest_sha256,
                         fleet, opens == rollout_state.ring_opens.end() ? kNone : opens->second,
                         rollout_state.halts, now, rollout_state.stale_after);
    if (ro.staged) {
        for (const auto& ring : ro.progress.rings) {
            rs.rings.push_back({ring.name, ring.members, ring.reachable, ring.effective,
                                ring.failed, ring.needed,
                                static_cast<double>(ring.failure_bp) / core::kBasisPoints,
                                ring.open, ring.opened_at, ring.succeeded_at});
        }
        rs.next_ring_opens_at = ro.progress.next_open_at;
        rs.waiting_for = ro.progress.waiting_for;
    }
    if (ro.halt) {
        rs.halted = true;
        rs.halt_reason = ro.halt->reason;
        rs.halted_by = ro.halt->by;
        rs.halted_at = ro.halt->halted_at;
    } else if (ro.progress.halted) {
        rs.halt_pending = true;
        rs.halt_reason = ro.progress.halt_reason;
    }

    std::optional<double> seed_present;
    for (const auto& p : rollout_state.seed_problems) {
        if (p.release_id != entry.id) continue;
        if (!p.manifest_sha256.empty() && p.manifest_sha256 != entry.manifest_sha256) continue;
        rs.seed_problem = "HQ's copy is damaged: re-publish (" + p.message + ")";
        seed_present = p.present;
    }

    rs.endpoints = fleet.endpoints.size();
    std::map<std::string, std::size_t> counts;
    std::map<std::string, SiteStatus> by_site;
    for (const auto& site : sites.sites()) by_site[site.name].name = site.name;
    std::map<std::string, const EndpointReleaseRow*> by_device;
    for (const auto& row : fleet.releases) {
        if (row.release_id == entry.id) by_device.emplace(row.device_id, &row);
    }
    std::vector<std::int64_t> to_effective;
    for (const auto& ep : fleet.endpoints) {
        EndpointStatus line;
        line.device_id = ep.device_id;
        line.hostname = ep.hostname;
        line.remote_address = ep.remote_address;
        line.state = std::string(kUnreported);
        line.last_seen = ep.last_seen;
        line.last_state = std::string(kUnreported);
        line.groups = ep.groups;
        line.agent_version = ep.agent_version;
        if (ro.staged) {
            const std::size_t ring = ro.ring_of.at(ep.device_id);
            line.ring = ring < rs.rings.size() ? rs.rings[ring].name : "";
        }
        const std::string site_name = sites.classify(std::string_view(ep.remote_address));
        line.site = site_name;
        SiteStatus& site = by_site[site_name];
        site.name = site_name;
        ++site.endpoints;
        if (const auto it = by_device.find(ep.device_id); it != by_device.end()) {
            const EndpointReleaseRow& row = *it->second;
            ++rs.reported;
            rs.bytes_from_peers += row.bytes_from_peers;
            rs.bytes_from_seeder += row.bytes_from_seeder;
            site.bytes_from_wan += row.bytes_from_wan.value_or(row.bytes_from_seeder);
            site.bytes_from_lan += row.bytes_from_lan.value_or(row.bytes_from_peers);
            line.state = row.state ? std::string(core::to_string(*row.state)) : "unknown";
            line.last_state = line.state;
            line.since = row.entered_at;
            line.progress = row.progress;
            line.attempts = row.attempts;
            line.reason = row.reason;
            line.deferred_until = row.deferred_until;
            line.deferred_by = row.deferred_by;
            line.next_attempt_at = row.next_attempt_at;
            line.max_attempts = row.max_attempts;
        }
        // Silence is not compliance: a machine that stopped reporting may have been reimaged.
        if (is_stale(ep, now, rollout_state.stale_after)) {
            line.state = std::string(line.last_state == core::to_string(State::effective)
                                         ? kOfflineEffective
                                         : kOfflineNotPatched);
            ++counts[std::string(kStale)];
            if (line.state == kOfflineEffective) ++rs.offline_effective;
        }
        line.why = why_of(line, now);
        // With HQ's copy damaged, an endpoint that has every piece HQ has waits for pieces that
        // no source has: not a slow download, and no amount of waiting fixes it.
        if (!rs.seed_problem.empty() && line.state == core::to_string(State::downloading) &&
            (!seed_present || line.progress + 1e-6 >= std::floor(*seed_present * 100) / 100)) {
            line.why = "waiting for pieces no source has (HQ's copy is damaged), " +
                       percent_text(line.progress) + " done";
            ++rs.waiting_for_missing_pieces;
        }
        ++counts[line.state];
        if (line.state == core::to_string(State::effective)) {
            ++rs.effective;
            ++site.effective;
            if (rs.published_at && line.since) {
                to_effective.push_back(std::max<std::int64_t>(0, *line.since - *rs.published_at));
            }
        } else {
            rs.not_effective.push_back(line);
        }
        rs.all.push_back(std::move(line));
    }
    std::sort(to_effective.begin(), to_effective.end());
    rs.effective_times = to_effective;
    rs.time_to_protection = time_to_protection(std::move(to_effective));
    for (const State s : kStates) {
        const std::string name(core::to_string(s));
        rs.counts.emplace_back(name, counts[name]);
    }
    rs.counts.emplace_back(std::string(kUnreported), counts[std::string(kUnreported)]);
    for (const auto name : {kStale, kOfflineEffective, kOfflineNotPatched}) {
        rs.counts.emplace_back(std::string(name), counts[std::string(name)]);
    }
    auto finish = [&](SiteStatus site) {
        site.wan_copies =
            rs.size ? static_cast<double>(site.bytes_from_wan) / static_cast<double>(rs.size) : 0.0;
        rs.sites.push_back(std::move(site));
    };
    for (const auto& site : sites.sites()) {
        finish(by_site.at(site.name));
        by_site.erase(site.name);
    }
    for (auto& [name, site] : by_site) finish(std::move(site));  // automatic sites, by name
    std::stable_sort(rs.not_effective.begin(), rs.not_effective.end(),
                     [](const EndpointStatus& a, const EndpointStatus& b) {
                         const int ra = attention_rank(a.state);
                         const int rb = attention_rank(b.state);
                         if (ra != rb) return ra < rb;
                         return a.hostname < b.hostname;
                     });
    return rs;
}

}  // namespace

std::optional<double> seed_present_of(std::string_view message) {
    const auto end = message.find("% present)");
    if (end == std::string_view::npos) return std::nullopt;
    std::size_t start = end;
    while (start > 0 && message[start - 1] >= '0' && message[start - 1] <= '9') --start;
    if (start == end || end - start > 3) return std::nullopt;
    int percent = 0;
    for (std::size_t i = start; i < end; ++i) percent = percent * 10 + (message[i] - '0');
    if (percent > 100) return std::nullopt;
    return percent / 100.0;
}

namespace {

ManifestFacts read_manifest_facts(const RepoPaths& paths, const std::string& id) {
    // Local, trusted files: signatures were made by publish; this only labels the table.
    auto text = io::read_file(paths.manifest(id), 2 * core::kMaxManifestBytes);
    if (!text) return {};
    auto env = core::parse_envelope(*text, 2 * core::kMaxManifestBytes);
    if (!env) return {};
    auto m = core::parse_manifest(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    if (!m) return {};
    return {m->name, std::string(core::to_string(m->severity)), m->total_size(), m->created,
            m->rollout};
}

}  // namespace

FleetStatus build_status(const std::string& repository, const Index& index,
                         const std::map<std::string, ManifestFacts>& manifests,
                         const FleetSnapshot& fleet, std::uint64_t feed_sequence, std::int64_t now,
                         const core::SiteMap& sites, const RolloutState& rollout) {
    FleetStatus status;
    status.repository = repository;
    status.generated_at = now;
    status.feed_sequence = feed_sequence;
    status.endpoints = fleet.endpoints.size();
    status.revoked = fleet.revoked;
    status.stale_after = rollout.stale_after;
    for (const auto& entry : index.releases) {
        const auto it = manifests.find(entry.id);
        status.releases.push_back(release_status(
            entry, it == manifests.end() ? nullptr : &it->second, fleet, sites, rollout, now));
    }
    return status;
}

TimeToProtection time_to_protection(std::vector<std::int64_t> seconds) {
    TimeToProtection t;
    t.effective = seconds.size();
    if (seconds.empty()) return t;
    std::sort(seconds.begin(), seconds.end());
    // Nearest rank: the smallest value with at least p of the values at or below it.
    const auto rank = [&](std::size_t percent) {
        const std::size_t n = seconds.size();
        const std::size_t r = (percent * n + 99) / 100;
        return seconds[std::max<std::size_t>(r, 1) - 1];
    };
    t.first = seconds.front();
    t.median = rank(50);
    t.p95 = rank(95);
    t.last = seconds.back();
    return t;
}

Result<FleetStatus> collect_status(const RepoPaths& paths, FleetDb* db, std::int64_t now,
                                   const core::SiteMap* sites,
                                   std::optional<std::int64_t> stale_after) {
    auto info = load_repo_info(paths);
    if (!info) return std::unexpected(info.error());
    auto index = load_index(paths);
    if (!index) return std::unexpected(index.error());

    std::unique_ptr<FleetDb> opened;
    std::error_code ec;
    if (!db && std::filesystem::exists(paths.fleet_db(), ec)) {
        auto o = FleetDb::open(paths.fleet_db());
        if (!o) return fail(o.error().code, "fleet.db: " + o.error().message);
        opened = std::move(*o);
        db = opened.get();
    }
    FleetSnapshot fleet;
    std::uint64_t feed_sequence = 0;
    core::SiteMap saved_sites;
    if (db) {
        if (!sites) {
            auto specs = db->load_sites();
            if (!specs) return std::unexpected(specs.error());
            // Written by serve from sites it validated; one that no longer parses is skipped
            // rather than hiding the whole fleet.
            auto map = core::SiteMap::parse(*specs);
            if (map) saved_sites = std::move(*map);
        }
        auto snap = db->snapshot();
        if (!snap) return std::unexpected(snap.error());
        fleet = std::move(*snap);
        auto seq = db->feed_sequence();
        if (!seq) return std::unexpected(seq.error());
        feed_sequence = *seq;
    }
    RolloutState rollout;
    rollout.stale_after = stale_after.value_or(kDefaultStaleAfterS);
    if (db) {
        if (!stale_after) {
            auto saved = db->get_meta("stale_after");
            if (!saved) return std::unexpected(saved.error());
            if (*saved) {
                try {
                    rollout.stale_after = std::stoll(**saved);
                } catch (const std::exception&) {
                    // Written by serve; an unreadable value keeps the default.
                }
            }
        }
        auto halts = db->halts();
        if (!halts) return std::unexpected(halts.error());
        rollout.halts = std::move(*halts);
        auto problems = db->seed_problems();
        if (!problems) return std::unexpected(problems.error());
        rollout.seed_problems = std::move(*problems);
        for (const auto& entry : index->releases) {
            auto opens = db->ring_opens(entry.id, entry.manifest_sha256);
            if (!opens) return std::unexpected(opens.error());
            rollout.ring_opens[entry.id] = std::move(*opens);
        }
    }
    std::map<std::string, ManifestFacts> manifests;
    for (const auto& entry : index->releases) {
        manifests.emplace(entry.id, read_manifest_facts(paths, entry.id));
    }
    return build_status(info->name, *index, manifests, fleet, feed_sequence, now,
                        sites ? *sites : saved_sites, rollout);
}

}  // namespace patchswarm::seeder
