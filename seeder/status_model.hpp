// Fleet compliance per release: the model behind `patchswarm-seeder status [--json|--csv]` and
// GET /v1/status (schema: docs/STATUS_JSON.md). Its renderers (text, JSON, CSV) are in
// seeder/status_render.hpp; the dashboard reads the JSON.
//
// build_status is pure; collect_status reads the repository and fleet.db.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "core/sites.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/repo.hpp"
#include "seeder/rollout_eval.hpp"

namespace patchswarm::seeder {

// Pseudo-state of an endpoint known to the fleet that has not reported a release yet.
inline constexpr std::string_view kUnreported = "unreported";
// An endpoint that has not reported for longer than stale_after is never counted effective,
// whatever it last said. Its pseudo-state says which of two very different cases it is: it was
// effective when it went silent, or it was not (still downloading, waiting, failed...).
inline constexpr std::string_view kOfflineEffective = "offline_effective";
inline constexpr std::string_view kOfflineNotPatched = "offline_not_patched";
// The count of both together in ReleaseStatus::counts (format 1 had only this one).
inline constexpr std::string_view kStale = "stale";
inline bool is_offline_state(std::string_view state) {
    return state == kOfflineEffective || state == kOfflineNotPatched;
}

struct EndpointStatus {
    std::string device_id;
    std::string hostname;
    std::string remote_address;
    std::string state;                  // a core::State name, "unreported", "offline_effective" or
                                        // "offline_not_patched"
    std::optional<std::int64_t> since;  // when the state was entered (endpoint clock)
    double progress = 0;
    std::uint32_t attempts = 0;
    std::string reason;
    std::int64_t last_seen = 0;  // last report (seeder clock)
    // What it last reported for this release ("unreported" if nothing): differs from `state`
    // only when the endpoint is stale.
    std::string last_state;
    std::string ring;  // name of its rollout ring; empty when the release has no rings
    std::vector<std::string> groups;
    std::string agent_version;  // "" if the endpoint does not report it
    std::optional<std::int64_t> deferred_until;
    std::optional<std::string> deferred_by;       // who set the deferral, if the endpoint said
    std::optional<std::int64_t> next_attempt_at;  // when failed: next retry, 0 none (if said)
    std::optional<std::uint32_t> max_attempts;    // attempts the endpoint allows (if said)
    std::string site;
    std::string why;  // one line: what still stands between this endpoint and `effective`
};

// Seconds from publish (the manifest's `created`) to `effective`, over endpoints effective now.
struct TimeToProtection {
    std::size_t effective = 0;
    std::optional<std::int64_t> first, median, p95, last;  // nearest-rank percentiles
};

struct RingView {
    std::string name;
    std::size_t members = 0, reachable = 0, effective = 0, failed = 0, needed = 0;
    double failure_rate = 0;  // 0..1
    bool open = false;
    std::optional<std::int64_t> opened_at, succeeded_at;
};

// One site's view of one release. An endpoint's site is the classification of the remote
// address of its last accepted report.
struct SiteStatus {
    std::string name;           // a configured site, or "auto:10.9.8.0/24"
    std::size_t endpoints = 0;  // known endpoints of the site
    std::size_t effective = 0;
    // Payload bytes the site's endpoints report from outside the site (the seeder included) and
    // from their LAN. An endpoint that does not report the split counts its bytes_from_seeder
    // as WAN and its bytes_from_peers as LAN.
    std::uint64_t bytes_from_wan = 0;
    std::uint64_t bytes_from_lan = 0;
    double wan_copies = 0;  // bytes_from_wan / release size (0 when the size is unknown)
};

struct ReleaseStatus {
    std::string id;
    std::uint64_t sequence = 0;
    std::string manifest_sha256;
    std::string name;      // from the manifest; empty if it cannot be read
    std::string severity;  // idem
    std::uint64_t size = 0;
    std::size_t endpoints = 0;          // endpoints known to the fleet
    std::size_t reported = 0;           // endpoints that reported this release
    std::size_t effective = 0;          // confirmed: effective and reporting
    std::size_t offline_effective = 0;  // last known effective, but offline (not in `effective`)
    // Every core::State in state-machine order, then "unreported", "stale" (both offline states
    // together), "offline_effective", "offline_not_patched"; zeros included.
    std::vector<std::pair<std::string, std::size_t>> counts;
    std::uint64_t bytes_from_peers = 0;
    std::uint64_t bytes_from_seeder = 0;
    std::vector<EndpointStatus> not_effective;  // failed/rejected first, then by progress
    // Configured sites in configuration order (also those without endpoints), then automatic
    // sites with endpoints, by name.
    std::vector<SiteStatus> sites;
    // Rollout (docs/STATUS_JSON.md): publish time, deadline, rings, halt, time to protection.
    std::optional<std::int64_t> published_at;
    std::optional<std::int64_t> deadline;
    std::vector<RingView> rings;  // empty when the release has no staged rollout
    std::optional<std::int64_t> next_ring_opens_at;
    std::string waiting_for;  // why the next ring is not open yet
    bool halted = false;      // listed as halted in the feed (latched)
    std::string halt_reason;
    std::string halted_by;  // "auto" or "manual"
    std::optional<std::int64_t> halted_at;
    bool halt_pending = false;  // auto-halt conditions hold now but serve has not latched it yet
    TimeToProtection time_to_protection;
    // Seconds from published_at to effective of each endpoint effective now, ascending: the
    // time-to-protection curve (empty without published_at).
    std::vector<std::int64_t> effective_times;
    std::vector<EndpointStatus> all;  // every known endpoint (for --csv), same fields
    // The seeder's own copy of this manifest failed its check: "HQ's copy is damaged:
    // re-publish (seed data incomplete after check (99% present))"; empty when it is sound.
    std::string seed_problem;
    // Downloading endpoints that have every piece HQ has: nobody can give them the rest.
    std::size_t waiting_for_missing_pieces = 0;
};

struct FleetStatus {
    std::string repository;
    std::int64_t generated_at = 0;
    std::uint64_t feed_sequence = 0;
    std::size_t endpoints = 0;
    std::size_t revoked = 0;  // revoked endpoints, not counted anywhere (device list)
    std::int64_t stale_after = 0;
    std::vector<ReleaseStatus> releases;  // index order (ascending sequence)
};

struct ManifestFacts {
    std::string name;
    std::string severity;
    std::uint64_t size = 0;
    std::int64_t created = 0;  // 0: unknown
    std::optional<core::Rollout> rollout;
};

// Rollout state from fleet.db that status shows: latched ring openings per release id (for its
// current manifest) and halts.
struct RolloutState {
    std::map<std::string, std::vector<std::int64_t>> ring_opens;
    std::vector<HaltRow> halts;
    std::int64_t stale_after = 300;
    std::vector<SeedProblem> seed_problems;  // serve's check of its own copies
};

// The share present from a swarm message like "seed data incomplete after check (99% present)",
// 0..1; nullopt if it says none.
std::optional<double> seed_present_of(std::string_view message);

FleetStatus build_status(const std::string& repository, const Index& index,
                         const std::map<std::string, ManifestFacts>& manifests,
                         const FleetSnapshot& fleet, std::uint64_t feed_sequence, std::int64_t now,
                         const core::SiteMap& sites = {}, const RolloutState& rollout = {});

// Nearest-rank percentiles of seconds-to-effective (values need not be sorted).
TimeToProtection time_to_protection(std::vector<std::int64_t> seconds);

// Reads repo.json, index.json, each release's manifest and the fleet database. `db` may be
// null: then fleet.db is opened if it exists (a repository that was never served has an empty
// fleet). `sites` null: the sites `serve` last ran with (saved in fleet.db). `stale_after`
// nullopt: what `serve` last ran with (fleet.db), else kDefaultStaleAfterS. Errc::not_found if
// the repository is not initialised.
[[nodiscard]] Result<FleetStatus> collect_status(
    const RepoPaths& paths, FleetDb* db, std::int64_t now, const core::SiteMap* sites = nullptr,
    std::optional<std::int64_t> stale_after = std::nullopt);

}  // namespace patchswarm::seeder
