#include "seeder/status_render.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/rollout.hpp"
#include "io/term.hpp"

namespace patchswarm::seeder {

namespace {

using core::State;

constexpr std::size_t kMaxTerminalRows = 20;

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
        // "stale" is the two offline states together, which are listed on their own.
        if (n == 0 || state == kStale) continue;
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

// One table of endpoints under `title`: those needing work (not effective, and not last known
// effective), or those last known effective but offline, which an admin judges differently.
void render_endpoint_rows(std::ostringstream& out, const std::vector<EndpointStatus>& rows,
                          std::string_view title, std::int64_t now, bool tty) {
    if (rows.empty()) return;
    std::size_t host_width = 4;
    for (const auto& e : rows) {
        host_width =
            std::max(host_width, std::min<std::size_t>(printable(e.hostname, 24).size(), 24));
    }
    out << "  " << title << " (" << rows.size() << "):\n";
    out << "    " << pad("DEVICE", 10) << pad("HOST", host_width + 2) << pad("STATE", 20)
        << pad("SINCE", 8) << pad("PROGRESS", tty ? 20 : 10) << "WHY\n";
    // A terminal shows the first rows (the ones needing attention sort first); pipes get all.
    const std::size_t shown = tty ? std::min(rows.size(), kMaxTerminalRows) : rows.size();
    for (std::size_t i = 0; i < shown; ++i) {
        const EndpointStatus& e = rows[i];
        out << "    " << pad(e.device_id.substr(0, 8), 10)
            << pad(printable(e.hostname, 24), host_width + 2) << pad(e.state, 20)
            << pad(age(e.since, now), 8)
            << pad(io::term::progress_bar(e.progress, 10, tty), tty ? 20 : 10)
            << printable(e.why, tty ? 80 : kMaxReasonBytes) << '\n';
    }
    if (shown < rows.size()) {
        out << "    ... and " << rows.size() - shown << " more (--json lists all)\n";
    }
}

void render_endpoints(std::ostringstream& out, const ReleaseStatus& rs, std::int64_t now,
                      bool tty) {
    std::vector<EndpointStatus> pending, offline_effective;
    for (const auto& e : rs.not_effective) {
        (e.state == kOfflineEffective ? offline_effective : pending).push_back(e);
    }
    render_endpoint_rows(out, pending, "not yet effective", now, tty);
    render_endpoint_rows(out, offline_effective, "last known effective, offline", now, tty);
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
        << " of " << rs.endpoints << " endpoints";
    // Not counted above: no evidence is not good evidence.
    if (rs.offline_effective > 0) {
        out << " · last known effective, offline " << rs.offline_effective;
    }
    out << '\n';
    if (!rs.seed_problem.empty()) {
        out << "  PROBLEM    " << printable(rs.seed_problem, 200);
        if (rs.waiting_for_missing_pieces > 0) {
            out << "; " << rs.waiting_for_missing_pieces
                << " endpoint(s) wait for pieces no source has";
        }
        out << '\n';
    }
    render_counts(out, rs);
    render_rollout(out, rs);
    render_bytes(out, rs);
    render_sites(out, rs);
    render_endpoints(out, rs, now, tty);
}

}  // namespace

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
            pending.push_back(
                {{"device_id", e.device_id},
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
                 {"agent_version", e.agent_version},
                 {"deferred_until", opt(e.deferred_until)},
                 {"site", e.site},
                 {"why", e.why},
                 {"deferred_by", e.deferred_by ? Json(*e.deferred_by) : Json(nullptr)},
                 {"next_attempt_at", opt(e.next_attempt_at)},
                 {"max_attempts", e.max_attempts ? Json(*e.max_attempts) : Json(nullptr)}});
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
        releases.push_back(
            {{"id", rs.id},
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
             {"effective_times", rs.effective_times},
             {"offline_effective", rs.offline_effective},
             {"seed_problem", rs.seed_problem.empty() ? Json(nullptr) : Json(rs.seed_problem)},
             {"waiting_for_missing_pieces", rs.waiting_for_missing_pieces}});
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

}  // namespace patchswarm::seeder
