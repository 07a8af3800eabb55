// GET /metrics: the seeder's figures in the Prometheus text exposition format (version 0.0.4).
// Pure: built from the fleet status document and serve's own counters.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "seeder/status_model.hpp"

namespace patchswarm::seeder {

// Counted by `serve` since it started (counters reset with the process, as Prometheus expects).
struct ServeCounters {
    std::uint64_t tracker_requests = 0;
    std::uint64_t reports_accepted = 0;
    std::uint64_t reports_refused = 0;
    std::uint64_t feeds_signed = 0;
    std::uint64_t http_rate_limited = 0;  // requests answered 429
    std::uint64_t http_unauthorized = 0;  // admin routes answered 401
};

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Families (each with # HELP and # TYPE):
//   patchswarm_build_info{version}                    gauge, always 1 (kVersion)
//   patchswarm_releases                               gauge
//   patchswarm_endpoints_known                        gauge
//   patchswarm_endpoints{release,state}               gauge (every state, unreported,
//                                                     offline_effective, offline_not_patched)
//   patchswarm_release_effective_ratio{release}       gauge
//   patchswarm_release_seed_damaged{release}          gauge 0/1 (HQ's copy failed its check)
//   patchswarm_release_halted{release}                gauge 0/1
//   patchswarm_ring_open{release,ring}                gauge 0/1
//   patchswarm_time_to_protection_seconds{release,quantile="0"|"0.5"|"0.95"|"1"}  gauge
//   patchswarm_bytes_total{site,source="lan"|"wan"}   counter (payload bytes endpoints report)
//   patchswarm_tracker_requests_total                 counter
//   patchswarm_reports_total{result="accepted"|"refused"}  counter
//   patchswarm_feeds_signed_total                     counter
//   patchswarm_http_refused_total{reason="rate_limited"|"unauthorized"}  counter
//   patchswarm_feed_sequence                          gauge
//   patchswarm_report_lag_seconds{quantile="0.5"|"1"} gauge: seconds since each known
//                                                     endpoint's last report
// Label values are escaped (\\, \", \n).
std::string render_metrics(const FleetStatus& status, const ServeCounters& counters,
                           std::span<const std::int64_t> last_seen);

}  // namespace patchswarm::seeder
