#include "seeder/status.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/term.hpp"

namespace patchswarm::seeder {

namespace {

using core::State;

constexpr std::size_t kMaxTerminalRows = 20;

constexpr std::array kStates = {State::announced, State::downloading, State::verified,
                                State::waiting,   State::installing,  State::reboot_pending,
                                State::effective, State::failed,      State::rejected};

// What needs attention first: endpoints that gave up, then those that have not even started.
int attention_rank(std::string_view state) {
    static constexpr std::array<std::string_view, 10> order = {
        "rejected",    "failed",   "stale",   "unreported", "announced",
        "downloading", "verified", "waiting", "installing", "reboot_pending"};
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
    if (e.state == kStale) {
        return "offline: no report since " + core::format_utc(e.last_seen) + " (last state " +
               e.last_state + (e.since ? " since " + when(e.since) : std::string()) + ")";
    }
    if (e.state == kUnreported) {
        return "has not reported this release (last report " + core::format_utc(e.last_seen) + ")";
    }
    const std::string detail = e.reason.empty() ? "" : ": " + e.reason;
    if (e.state == "failed") return "failed (attempt " + std::to_string(e.attempts) + ")" + detail;
    if (e.state == "rejected") return "rejected" + detail;
    if (e.state == "reboot_pending") return "reboot pending since " + when(e.since) + detail;
    if (e.state == "waiting") {
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
        }
        // Silence is not compliance: a machine that stopped reporting may have been reimaged.
        if (is_stale(ep, now, rollout_state.stale_after)) line.state = std::string(kStale);
        line.why = why_of(line, now);
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
    rs.counts.emplace_back(std::string(kStale), counts[std::string(kStale)]);
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

// ---- text ------------------------------------------------------------------------------------

// Reports come from the network: never let their text move the cursor or change colours.
std::string printable(std::string_view s, std::size_t max_chars) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
    }
    if (out.size() > max_chars) out = out.substr(0, max_chars > 3 ? max_chars - 3 : 0) + "...";
    return out;
}

std::string age(std::optional<std::int64_t> since, std::int64_t now) {
    if (!since) return "-";
    const std::int64_t s = std::max<std::int64_t>(0, now - *since);
    char buf[32];
    if (s < 60) {
        std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
    } else if (s < 3600) {
        std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(s / 60));
    } else if (s < 86400) {
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                      static_cast<long long>(s % 3600 / 60));
    } else {
        std::snprintf(buf, sizeof buf, "%lldd", static_cast<long long>(s / 86400));
    }
    return buf;
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

void render_counts(std::ostringstream& out, const ReleaseStatus& rs) {
    out << "  states     ";
    bool any = false;
    for (const auto& [state, n] : rs.counts) {
        if (n == 0) continue;
        out << (any ? " · " : "") << state << ' ' << n;
        any = true;
    }
    out << (any ? "" : "no endpoint has reported yet") << '\n';
}

void render_bytes(std::ostringstream& out, const ReleaseStatus& rs) {
    const std::uint64_t total = rs.bytes_from_peers + rs.bytes_from_seeder;
    const int peer_pct =
        total ? static_cast<int>(static_cast<double>(rs.bytes_from_peers) * 100.0 / total + 0.5)
              : 0;
    out << "  bytes      " << io::term::human_bytes(rs.bytes_from_peers) << " from peers ("
        << peer_pct << "%) · " << io::term::human_bytes(rs.bytes_from_seeder)
        << " from the seeder\n";
}

// Per site: how many are done, and how many payload copies crossed its WAN link.
void render_sites(std::ostringstream& out, const ReleaseStatus& rs) {
    if (rs.sites.empty()) return;
    std::size_t width = 4;
    for (const auto& s : rs.sites)
        width = std::max(width, std::min<std::size_t>(s.name.size(), 40));
    out << "  sites      " << pad("SITE", width + 2) << pad("EFFECTIVE", 12) << pad("WAN IN", 12)
        << pad("COPIES", 8) << "LAN IN\n";
    for (const auto& s : rs.sites) {
        char copies[32];
        std::snprintf(copies, sizeof copies, "%.2f", s.wan_copies);
        out << "             " << pad(printable(s.name, 40), width + 2)
            << pad(std::to_string(s.effective) + "/" + std::to_string(s.endpoints), 12)
            << pad(io::term::human_bytes(s.bytes_from_wan), 12) << pad(copies, 8)
            << io::term::human_bytes(s.bytes_from_lan) << '\n';
    }
}

void render_endpoints(std::ostringstream& out, const ReleaseStatus& rs, std::int64_t now,
                      bool tty) {
    if (rs.not_effective.empty()) return;
    std::size_t host_width = 4;
    for (const auto& e : rs.not_effective) {
        host_width =
            std::max(host_width, std::min<std::size_t>(printable(e.hostname, 24).size(), 24));
    }
    out << "  not yet effective (" << rs.not_effective.size() << "):\n";
    out << "    " << pad("DEVICE", 10) << pad("HOST", host_width + 2) << pad("STATE", 16)
        << pad("SINCE", 8) << pad("PROGRESS", tty ? 20 : 10) << "WHY\n";
    // A terminal shows the first rows (the ones needing attention sort first); pipes get all.
    const std::size_t shown =
        tty ? std::min(rs.not_effective.size(), kMaxTerminalRows) : rs.not_effective.size();
    for (std::size_t i = 0; i < shown; ++i) {
        const EndpointStatus& e = rs.not_effective[i];
        out << "    " << pad(e.device_id.substr(0, 8), 10)
            << pad(printable(e.hostname, 24), host_width + 2) << pad(e.state, 16)
            << pad(age(e.since, now), 8)
            << pad(io::term::progress_bar(e.progress, 10, tty), tty ? 20 : 10)
            << printable(e.why, tty ? 80 : kMaxReasonBytes) << '\n';
    }
    if (shown < rs.not_effective.size()) {
        out << "    ... and " << rs.not_effective.size() - shown << " more (--json lists all)\n";
    }
}

std::string seconds_text(std::optional<std::int64_t> s) {
    if (!s) return "-";
    return age(std::int64_t{0}, *s);
}

// Rings, halt, deadline and time to protection: the rollout in a few lines.
void render_rollout(std::ostringstream& out, const ReleaseStatus& rs) {
    if (rs.halted) {
        out << "  HALTED     by " << rs.halted_by << " at "
            << (rs.halted_at ? core::format_utc(*rs.halted_at) : "?") << ": "
            << printable(rs.halt_reason, 200) << '\n';
    } else if (rs.halt_pending) {
        out << "  HALT       pending (serve latches it): " << printable(rs.halt_reason, 200)
            << '\n';
    }
    for (const auto& ring : rs.rings) {
        char rate[16];
        std::snprintf(rate, sizeof rate, "%.0f%%", ring.failure_rate * 100.0);
        out << "  ring       " << pad(printable(ring.name, 24), 18)
            << pad(ring.open ? "open" : "closed", 8) << ring.effective << "/" << ring.members
            << " effective (needs " << ring.needed << "), " << ring.failed << " failed (" << rate
            << ")";
        if (ring.opened_at) out << ", opened " << core::format_utc(*ring.opened_at);
        out << '\n';
    }
    if (!rs.waiting_for.empty()) out << "  next ring  " << rs.waiting_for << '\n';
    if (rs.deadline) out << "  deadline   " << core::format_utc(*rs.deadline) << '\n';
    const auto& t = rs.time_to_protection;
    if (t.effective > 0) {
        out << "  protected  first " << seconds_text(t.first) << " · median "
            << seconds_text(t.median) << " · p95 " << seconds_text(t.p95) << " · last "
            << seconds_text(t.last) << " after publish\n";
    }
}

void render_release(std::ostringstream& out, const ReleaseStatus& rs, std::int64_t now, bool tty) {
    out << '\n' << rs.id;
    if (!rs.name.empty()) out << " · " << rs.name;
    if (!rs.severity.empty()) out << " · " << rs.severity;
    out << " · " << io::term::human_bytes(rs.size) << " · sequence " << rs.sequence << '\n';
    const double fraction =
        rs.endpoints ? static_cast<double>(rs.effective) / static_cast<double>(rs.endpoints) : 0;
    out << "  effective  " << io::term::progress_bar(fraction, 30, tty) << "  " << rs.effective
        << " of " << rs.endpoints << " endpoints\n";
    render_counts(out, rs);
    render_rollout(out, rs);
    render_bytes(out, rs);
    render_sites(out, rs);
    render_endpoints(out, rs, now, tty);
}

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

namespace {

std::string csv_field(std::string_view text, bool from_report) {
    std::string value;
    // A spreadsheet runs a cell that starts with = + - @ as a formula; reports come from the
    // network, so such text gets a leading apostrophe.
    if (from_report && !text.empty() &&
        (text.front() == '=' || text.front() == '+' || text.front() == '-' || text.front() == '@' ||
         text.front() == '\t' || text.front() == '\r')) {
        value.push_back('\'');
    }
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        value.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
    }
    std::string out = "\"";
    for (const char c : value) {
        if (c == '"') out.push_back('"');
        out.push_back(c);
    }
    return out + "\"";
}

}  // namespace

std::string status_csv(const FleetStatus& status) {
    std::string out =
        "release,device_id,hostname,site,groups,ring,state,since,last_seen,effective,why\r\n";
    for (const auto& rs : status.releases) {
        for (const auto& e : rs.all) {
            std::string groups;
            for (const auto& g : e.groups) groups += (groups.empty() ? "" : " ") + g;
            out += csv_field(rs.id, false) + ',' + csv_field(e.device_id, false) + ',' +
                   csv_field(e.hostname, true) + ',' + csv_field(e.site, false) + ',' +
                   csv_field(groups, true) + ',' + csv_field(e.ring, false) + ',' +
                   csv_field(e.state, false) + ',' +
                   (e.since ? core::format_utc(*e.since) : std::string()) + ',' +
                   core::format_utc(e.last_seen) + ',' +
                   (e.state == core::to_string(State::effective) ? "yes" : "no") + ',' +
                   csv_field(e.why, true) + "\r\n";
        }
    }
    return out;
}

std::string status_json(const FleetStatus& status) {
    using Json = nlohmann::ordered_json;  // fixed key order: a stable document
    const auto opt = [](const std::optional<std::int64_t>& v) {
        return v ? Json(*v) : Json(nullptr);
    };
    Json releases = Json::array();
    for (const auto& rs : status.releases) {
        Json counts = Json::object();
        for (const auto& [state, n] : rs.counts) counts[state] = n;
        Json pending = Json::array();
        for (const auto& e : rs.not_effective) {
            pending.push_back({{"device_id", e.device_id},
                               {"hostname", e.hostname},
                               {"remote_address", e.remote_address},
                               {"state", e.state},
                               {"since", e.since ? Json(*e.since) : Json(nullptr)},
                               {"progress", e.progress},
                               {"attempts", e.attempts},
                               {"reason", e.reason},
                               {"last_seen", e.last_seen},
                               {"last_state", e.last_state},
                               {"ring", e.ring},
                               {"groups", e.groups},
                               {"deferred_until", opt(e.deferred_until)},
                               {"site", e.site},
                               {"why", e.why}});
        }
        Json rings = Json::array();
        for (const auto& ring : rs.rings) {
            rings.push_back({{"name", ring.name},
                             {"members", ring.members},
                             {"reachable", ring.reachable},
                             {"effective", ring.effective},
                             {"failed", ring.failed},
                             {"needed", ring.needed},
                             {"failure_rate", ring.failure_rate},
                             {"open", ring.open},
                             {"opened_at", opt(ring.opened_at)},
                             {"succeeded_at", opt(ring.succeeded_at)}});
        }
        const auto& ttp = rs.time_to_protection;
        const Json halt = rs.halted || rs.halt_pending
                              ? Json{{"reason", rs.halt_reason},
                                     {"by", rs.halt_pending ? "auto" : rs.halted_by},
                                     {"at", opt(rs.halted_at)},
                                     {"latched", rs.halted}}
                              : Json(nullptr);
        Json sites = Json::array();
        for (const auto& site : rs.sites) {
            sites.push_back({{"name", site.name},
                             {"endpoints", site.endpoints},
                             {"effective", site.effective},
                             {"bytes_from_wan", site.bytes_from_wan},
                             {"bytes_from_lan", site.bytes_from_lan},
                             {"wan_copies", site.wan_copies}});
        }
        releases.push_back({{"id", rs.id},
                            {"sequence", rs.sequence},
                            {"manifest_sha256", rs.manifest_sha256},
                            {"name", rs.name},
                            {"severity", rs.severity},
                            {"size", rs.size},
                            {"endpoints", rs.endpoints},
                            {"reported", rs.reported},
                            {"effective", rs.effective},
                            {"counts", counts},
                            {"bytes_from_peers", rs.bytes_from_peers},
                            {"bytes_from_seeder", rs.bytes_from_seeder},
                            {"not_effective", pending},
                            {"sites", sites},
                            {"published_at", opt(rs.published_at)},
                            {"deadline", opt(rs.deadline)},
                            {"halted", rs.halted},
                            {"halt", halt},
                            {"rings", rings},
                            {"next_ring_opens_at", opt(rs.next_ring_opens_at)},
                            {"waiting_for", rs.waiting_for},
                            {"time_to_protection",
                             {{"effective", ttp.effective},
                              {"first_s", opt(ttp.first)},
                              {"median_s", opt(ttp.median)},
                              {"p95_s", opt(ttp.p95)},
                              {"last_s", opt(ttp.last)}}},
                            {"effective_times", rs.effective_times}});
    }
    const Json doc = {{"format", 1},
                      {"repository", status.repository},
                      {"generated_at", status.generated_at},
                      {"feed_sequence", status.feed_sequence},
                      {"endpoints", status.endpoints},
                      {"releases", releases},
                      {"stale_after", status.stale_after},
                      {"revoked_endpoints", status.revoked}};
    return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string render_status(const FleetStatus& status, bool tty) {
    std::ostringstream out;
    out << "repository " << status.repository << " · feed sequence " << status.feed_sequence
        << " · " << status.endpoints << " endpoint" << (status.endpoints == 1 ? "" : "s")
        << " known";
    if (status.revoked > 0) {
        out << " · " << status.revoked << " revoked, not counted (device list)";
    }
    out << "\n";
    if (status.releases.empty()) out << "\nno releases published\n";
    for (const auto& rs : status.releases) render_release(out, rs, status.generated_at, tty);
    return out.str();
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
