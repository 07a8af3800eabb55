#include "seeder/metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <vector>

#include "base/version.hpp"

namespace patchswarm::seeder {

namespace {

std::string escape_label(std::string_view v) {
    std::string out;
    for (const char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

class Writer {
  public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    }
    void sample(std::string_view name,
                std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                double value) {
        out_ << name;
        if (labels.size() != 0) {
            out_ << '{';
            bool first = true;
            for (const auto& [k, v] : labels) {
                out_ << (first ? "" : ",") << k << "=\"" << escape_label(v) << '"';
                first = false;
            }
            out_ << '}';
        }
        char num[64];
        std::snprintf(num, sizeof num, "%.17g", value);
        out_ << ' ' << num << '\n';
    }
    std::string str() const { return out_.str(); }

  private:
    std::ostringstream out_;
};

double as_double(std::uint64_t v) {
    return static_cast<double>(v);
}

}  // namespace

std::string render_metrics(const FleetStatus& status, const ServeCounters& counters,
                           std::span<const std::int64_t> last_seen) {
    Writer w;
    // The usual Prometheus idiom: a constant 1 whose labels carry the build, so dashboards can
    // join on it and an alert can spot a fleet of mixed versions.
    w.family("patchswarm_build_info", "gauge", "The seeder's version (value always 1).");
    w.sample("patchswarm_build_info", {{"version", kVersion}}, 1);
    w.family("patchswarm_releases", "gauge", "Releases listed in the feed.");
    w.sample("patchswarm_releases", {}, as_double(status.releases.size()));
    w.family("patchswarm_endpoints_known", "gauge", "Endpoints that have sent a report.");
    w.sample("patchswarm_endpoints_known", {}, as_double(status.endpoints));

    w.family("patchswarm_endpoints", "gauge",
             "Endpoints per release and state (offline_effective, offline_not_patched: no "
             "report for stale_after seconds, last effective or not).");
    for (const auto& rs : status.releases) {
        for (const auto& [state, n] : rs.counts) {
            // "stale" is the sum of the two offline states: summing over `state` must not count
            // an endpoint twice.
            if (state == kStale) continue;
            w.sample("patchswarm_endpoints", {{"release", rs.id}, {"state", state}}, as_double(n));
        }
    }
    w.family("patchswarm_release_effective_ratio", "gauge",
             "Share of known endpoints on which the release is in effect.");
    for (const auto& rs : status.releases) {
        w.sample("patchswarm_release_effective_ratio", {{"release", rs.id}},
                 rs.endpoints ? as_double(rs.effective) / as_double(rs.endpoints) : 0.0);
    }
    w.family("patchswarm_release_seed_damaged", "gauge",
             "1 when the seeder's own copy of the release failed its check (re-publish).");
    for (const auto& rs : status.releases) {
        w.sample("patchswarm_release_seed_damaged", {{"release", rs.id}},
                 rs.seed_problem.empty() ? 0 : 1);
    }
    w.family("patchswarm_release_halted", "gauge", "1 when the release is halted in the feed.");
    for (const auto& rs : status.releases) {
        w.sample("patchswarm_release_halted", {{"release", rs.id}}, rs.halted ? 1 : 0);
    }
    w.family("patchswarm_ring_open", "gauge", "1 when the rollout ring is open.");
    for (const auto& rs : status.releases) {
        for (const auto& ring : rs.rings) {
            w.sample("patchswarm_ring_open", {{"release", rs.id}, {"ring", ring.name}},
                     ring.open ? 1 : 0);
        }
    }
    w.family("patchswarm_time_to_protection_seconds", "gauge",
             "Seconds from publish to effective over endpoints effective now "
             "(quantile 0: first, 1: last).");
    for (const auto& rs : status.releases) {
        const auto& t = rs.time_to_protection;
        if (t.effective == 0) continue;
        const std::pair<const char*, std::optional<std::int64_t>> qs[] = {
            {"0", t.first}, {"0.5", t.median}, {"0.95", t.p95}, {"1", t.last}};
        for (const auto& [q, v] : qs) {
            if (v) {
                w.sample("patchswarm_time_to_protection_seconds",
                         {{"release", rs.id}, {"quantile", q}}, static_cast<double>(*v));
            }
        }
    }

    // Per site over all releases: what crossed the site's WAN link and what stayed on its LAN.
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> bytes;  // site -> lan, wan
    for (const auto& rs : status.releases) {
        for (const auto& site : rs.sites) {
            bytes[site.name].first += site.bytes_from_lan;
            bytes[site.name].second += site.bytes_from_wan;
        }
    }
    w.family("patchswarm_bytes_total", "counter",
             "Payload bytes endpoints report, by their site and by source (lan: peers of the "
             "same site; wan: outside it, the seeder included).");
    for (const auto& [site, b] : bytes) {
        w.sample("patchswarm_bytes_total", {{"site", site}, {"source", "lan"}}, as_double(b.first));
        w.sample("patchswarm_bytes_total", {{"site", site}, {"source", "wan"}},
                 as_double(b.second));
    }

    w.family("patchswarm_tracker_requests_total", "counter", "Tracker announces answered.");
    w.sample("patchswarm_tracker_requests_total", {}, as_double(counters.tracker_requests));
    w.family("patchswarm_reports_total", "counter", "Endpoint reports received, by result.");
    w.sample("patchswarm_reports_total", {{"result", "accepted"}},
             as_double(counters.reports_accepted));
    w.sample("patchswarm_reports_total", {{"result", "refused"}},
             as_double(counters.reports_refused));
    w.family("patchswarm_feeds_signed_total", "counter", "Feeds signed by this process.");
    w.sample("patchswarm_feeds_signed_total", {}, as_double(counters.feeds_signed));
    w.family("patchswarm_http_refused_total", "counter",
             "HTTP requests refused: over the per-client rate limit (429), or without the admin "
             "credential (401).");
    w.sample("patchswarm_http_refused_total", {{"reason", "rate_limited"}},
             as_double(counters.http_rate_limited));
    w.sample("patchswarm_http_refused_total", {{"reason", "unauthorized"}},
             as_double(counters.http_unauthorized));
    w.family("patchswarm_feed_sequence", "gauge", "Sequence of the current feed.");
    w.sample("patchswarm_feed_sequence", {}, as_double(status.feed_sequence));

    std::vector<std::int64_t> lag;
    for (const auto t : last_seen)
        lag.push_back(std::max<std::int64_t>(0, status.generated_at - t));
    std::sort(lag.begin(), lag.end());
    w.family("patchswarm_report_lag_seconds", "gauge",
             "Seconds since known endpoints last reported (median and maximum).");
    if (!lag.empty()) {
        w.sample("patchswarm_report_lag_seconds", {{"quantile", "0.5"}},
                 static_cast<double>(lag[(lag.size() - 1) / 2]));
        w.sample("patchswarm_report_lag_seconds", {{"quantile", "1"}},
                 static_cast<double>(lag.back()));
    }
    return w.str();
}

}  // namespace patchswarm::seeder
