// Fleet compliance per release: the document behind `patchswarm-seeder status [--json]` and
// GET /v1/status (schema: docs/STATUS_JSON.md), and its rendering for a terminal.
//
// build_status and render_status are pure; collect_status reads the repository and fleet.db.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/sites.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder {

// Pseudo-state of an endpoint known to the fleet that has not reported a release yet.
inline constexpr std::string_view kUnreported = "unreported";

struct EndpointStatus {
    std::string device_id;
    std::string hostname;
    std::string remote_address;
    std::string state;                  // a core::State name or "unreported"
    std::optional<std::int64_t> since;  // when the state was entered (endpoint clock)
    double progress = 0;
    std::uint32_t attempts = 0;
    std::string reason;
    std::int64_t last_seen = 0;  // last report (seeder clock)
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
    std::size_t endpoints = 0;  // endpoints known to the fleet
    std::size_t reported = 0;   // endpoints that reported this release
    std::size_t effective = 0;
    // Every core::State in state-machine order, then "unreported"; zeros included.
    std::vector<std::pair<std::string, std::size_t>> counts;
    std::uint64_t bytes_from_peers = 0;
    std::uint64_t bytes_from_seeder = 0;
    std::vector<EndpointStatus> not_effective;  // failed/rejected first, then by progress
    // Configured sites in configuration order (also those without endpoints), then automatic
    // sites with endpoints, by name.
    std::vector<SiteStatus> sites;
};

struct FleetStatus {
    std::string repository;
    std::int64_t generated_at = 0;
    std::uint64_t feed_sequence = 0;
    std::size_t endpoints = 0;
    std::vector<ReleaseStatus> releases;  // index order (ascending sequence)
};

struct ManifestFacts {
    std::string name;
    std::string severity;
    std::uint64_t size = 0;
};

FleetStatus build_status(const std::string& repository, const Index& index,
                         const std::map<std::string, ManifestFacts>& manifests,
                         const FleetSnapshot& fleet, std::uint64_t feed_sequence, std::int64_t now,
                         const core::SiteMap& sites = {});

// The JSON document (one line, stable key order).
std::string status_json(const FleetStatus& status);

// Text for humans. With `tty`, progress bars and columns trimmed to fit a terminal; without,
// the same lines with plain percentages (for logs and pipes).
std::string render_status(const FleetStatus& status, bool tty);

// Reads repo.json, index.json, each release's manifest and the fleet database. `db` may be
// null: then fleet.db is opened if it exists (a repository that was never served has an empty
// fleet). `sites` null: the sites `serve` last ran with (saved in fleet.db). Errc::not_found if
// the repository is not initialised.
[[nodiscard]] Result<FleetStatus> collect_status(const RepoPaths& paths, FleetDb* db,
                                                 std::int64_t now,
                                                 const core::SiteMap* sites = nullptr);

}  // namespace patchswarm::seeder
