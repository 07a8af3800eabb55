// The seeder's view of a staged rollout: which rings of a release are open and whether it is
// halted, from the fleet database's facts (reported groups and states, staleness, latched ring
// openings and halts). Pure: `serve` uses it to sign open_rings and halts into the feed, `status`
// to say why an endpoint still waits. No clock, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "seeder/fleet_db.hpp"

namespace patchswarm::seeder {

// An endpoint that has not reported for longer than this is stale (offline): shown as such,
// never counted effective, and not counted as reachable in ring thresholds.
inline constexpr std::int64_t kDefaultStaleAfterS = 300;

struct ReleaseRollout {
    bool staged = false;          // the manifest has rings
    core::RingProgress progress;  // evaluate_rings (one implicit ring when not staged)
    // The latched halt for this manifest (from fleet.db), if active.
    std::optional<HaltRow> halt;
    // What the feed should carry: open_rings (nullopt when not staged) and whether halted.
    std::optional<std::uint32_t> feed_open_rings;
    bool feed_halted = false;
    std::map<std::string, std::size_t> ring_of;  // device id -> ring index
};

// True when the endpoint has not reported within stale_after seconds of `now`.
inline bool is_stale(const EndpointRow& e, std::int64_t now, std::int64_t stale_after) {
    return now - e.last_seen > stale_after;
}

// Evaluates one release (release_id with manifest_sha256, published at `published_at`) over the
// whole known fleet. `opened_at`: ring opening times latched so far; `halts`: every halt row
// (only an active one for this manifest counts). Failures that entered before the last resume
// are forgiven: they no longer count towards auto-halt. While halted (latched or now), no
// further ring opens: feed_open_rings stays at the rings already latched open (at least 1).
// Unlike core::evaluate_rings, an empty ring (no endpoint known to be in it) holds the next
// ring closed until a member reports or the deadline passes: the seeder only knows endpoints
// that have reported, so empty usually means "not heard from yet".
ReleaseRollout evaluate_release(const core::Rollout* rollout, std::int64_t published_at,
                                const std::string& release_id, const std::string& manifest_sha256,
                                const FleetSnapshot& fleet, std::span<const std::int64_t> opened_at,
                                std::span<const HaltRow> halts, std::int64_t now,
                                std::int64_t stale_after);

}  // namespace patchswarm::seeder
