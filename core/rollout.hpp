// Rollout policy: which ring an endpoint is in, which rings are open (seeder side), and whether
// an endpoint may install or reboot now (endpoint side). The policy itself is data, signed in the
// manifest (core::Rollout in manifest.hpp); an emergency schedule is just a rollout with short
// soak times and an early deadline, never a code path keyed on severity.
//
// Pure: no clock (callers pass `now`, unix seconds), no I/O, no global state. Time zones come in
// through a UtcOffsetFn (real one: io/zoneinfo.hpp; tests: fixed offsets). Thread-safe as
// long as the UtcOffsetFn is.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/manifest.hpp"
#include "core/state_machine.hpp"

namespace patchswarm::core {

// UTC offset in seconds east of UTC of IANA zone `zone` at unix instant `at`; nullopt when the
// zone is unknown. Must be deterministic (same answer for the same arguments).
using UtcOffsetFn =
    std::function<std::optional<std::int32_t>(std::string_view zone, std::int64_t at)>;

// Name of the implicit last ring (endpoints no ring selects) in RingStatus; it cannot collide
// with a ring name from a manifest, which may not contain parentheses.
inline constexpr std::string_view kRestRingName = "(everyone else)";

// --- Rings -----------------------------------------------------------------------------------

// The device's stable place in the fleet, 0..9999: the first 8 bytes of SHA-256(device_id) as a
// big-endian integer, mod 10000. Ring::fleet_bp selects bucket < fleet_bp, so the same machines
// are always the canaries, and percentages are cumulative: a 1 % ring followed by a 10 % ring
// gives the second ring the next 9 % of the fleet.
std::uint32_t fleet_bucket(std::string_view device_id);

// Index of the first ring that selects the endpoint (by one of its groups, its device id, or its
// fleet bucket); nullopt for the implicit last ring, whose index is rollout.rings.size().
std::optional<std::size_t> ring_of(const Rollout& rollout, std::string_view device_id,
                                   std::span<const std::string> groups);

// What the seeder knows about one endpoint and this release. An endpoint known to the fleet that
// has not reported this release yet is passed with State::announced.
struct EndpointFacts {
    std::string device_id;
    std::vector<std::string> groups;
    State state = State::announced;
    std::int64_t entered_at = 0;          // when it entered `state` (endpoint's clock)
    bool reachable = true;                // false when stale: not counted in the success threshold
    Phase failed_phase = Phase::install;  // when failed: download failures do not count
                                          // towards auto-halt, install and verify failures do
};

struct RingStatus {
    std::string name;              // the ring's name, kRestRingName for the implicit last ring
    std::size_t members = 0;       // endpoints in the ring
    std::size_t reachable = 0;     // members not stale
    std::size_t effective = 0;     // reachable members that are effective
    std::size_t failed = 0;        // members failed in install/verify, reachable or stale
    std::size_t needed = 0;        // effective members the success threshold asks for
    std::uint32_t failure_bp = 0;  // failed / (reachable + stale failed), basis points
    bool open = false;
    std::optional<std::int64_t> opened_at;     // set when open
    std::optional<std::int64_t> succeeded_at;  // when the effective count reached `needed`

    bool operator==(const RingStatus&) const = default;
};

struct RingProgress {
    std::vector<RingStatus> rings;  // rollout.rings.size() + 1 entries; the last is implicit
    std::size_t open_count = 1;     // rings [0, open_count) are open (may install)
    std::size_t current = 0;        // open_count - 1: the newest open ring
    bool deadline_passed = false;   // every ring opened by the deadline
    bool halted = false;            // auto-halt: a ring's failure rate is over its maximum
    std::optional<std::size_t> halted_ring;
    std::string halt_reason;  // "ring canary: failure rate 40.00% (2 of 5) over 20.00%"
    // When the next ring opens if nothing else changes (its soak ends, or the deadline);
    // nullopt when that depends on endpoints still becoming effective, or all are open, or halted.
    std::optional<std::int64_t> next_open_at;
    std::string waiting_for;  // why the next ring is not open yet; empty if all open or halted

    bool is_open(std::size_t ring) const { return ring < open_count; }
    bool operator==(const RingProgress&) const = default;
};

// Seeder side: which rings of a release are open at `now`.
//
// Ring 0 opens at `published_at`. Ring k+1 opens once ring k reached its success threshold,
// needed = ceil(success_threshold x reachable members) effective members, at the time the
// effective count crossed it (the needed-th earliest entered_at of its reachable effective
// members, clamped to [ring k opened, now]), plus ring k's soak_s. A ring with no members
// succeeds when it opens; a ring whose members are all stale does not succeed (unless its
// threshold is 0): no evidence is not good evidence. At the deadline every ring opens.
//
// Auto-halt: an open ring whose failure rate (install/verify failures over reachable members plus
// stale failed members) is above its max_failure_rate halts the release. The implicit last ring
// uses the last ring's max_failure_rate (none if there are no rings). The verdict is for `now`:
// the caller latches a halt into the signed feed (it stays until resumed by hand), and persists
// the opening times of the rings it announced open and passes them back as `opened_at` (ring 0
// first), so an open ring never closes because, say, a stale canary came back; a ring listed
// there is open since that time whatever the endpoints say now.
RingProgress evaluate_rings(const Rollout& rollout, std::span<const EndpointFacts> endpoints,
                            std::int64_t published_at, std::int64_t now,
                            std::span<const std::int64_t> opened_at = {});

// --- Endpoint side -------------------------------------------------------------------------------

enum class WaitCause { none, halted, ring_closed, deferred, outside_window, unknown_zone };
std::string_view to_string(WaitCause);

struct InstallDecision {
    bool allowed = false;
    bool by_deadline = false;  // allowed only because the deadline has passed
    WaitCause cause = WaitCause::none;
    std::string wait_reason;  // for ev::Tick::wait_reason; empty when allowed
    // When the verdict can change with no new facts (a window opens, a deferral ends, the
    // deadline passes): the agent re-evaluates then. nullopt: only a feed change (ring opened,
    // halt lifted) or a new deferral can change it. Always nullopt when allowed.
    std::optional<std::int64_t> next_check_at;

    bool operator==(const InstallDecision&) const = default;
};

// May the endpoint install now? Yes only if not halted, its ring is open, and (unless the deadline
// has passed) no deferral holds and it is inside a maintenance window of one of its groups. The
// deadline overrides windows and deferral, never a halt or a closed ring (the seeder opens every
// ring at the deadline).
//
// Windows that apply: those of the endpoint's groups; if none of its groups has a window, those
// of group kAnyGroup ("*"); if there are none either, the endpoint may install at any time. A
// window is judged on the local wall clock: on the night clocks spring forward a 02:00-04:00
// window opens at 03:00 (one real hour); on the night they fall back a 01:00-02:00 window holds
// for both 01:00 hours. A window whose zone is unknown never holds (cause unknown_zone if no other
// window applies): installing at a wrong hour is worse than waiting for the deadline.
// `deferred_until` is clamped to the deadline.
InstallDecision may_install(const Rollout& rollout, const UtcOffsetFn& offsets, bool ring_open,
                            bool halted, std::optional<std::int64_t> deferred_until,
                            std::int64_t now, std::span<const std::string> groups);

// May the endpoint reboot now (after an install that needs one)? The same rules as may_install
// except the ring: the install already passed that gate. A halt still holds a reboot back.
InstallDecision may_reboot(const Rollout& rollout, const UtcOffsetFn& offsets, bool halted,
                           std::optional<std::int64_t> deferred_until, std::int64_t now,
                           std::span<const std::string> groups);

// Everything the endpoint decides on one tick for one release: its ring (from the signed
// manifest), whether that ring is open (the feed's open_rings; absent means all open; the signed
// deadline opens every ring even if the feed was never updated), the feed's halt, the local
// deferral and the maintenance windows. `rollout` null: a release without a rollout section,
// which only a halt holds back. Ring names go into the wait reason ("ring pilot is not open
// yet").
struct EndpointVerdict {
    InstallDecision install;
    InstallDecision reboot;
    std::size_t ring = 0;  // index; rollout.rings.size() for the implicit last ring
    std::string ring_name;
};
EndpointVerdict endpoint_verdict(const Rollout* rollout, const UtcOffsetFn& offsets,
                                 std::optional<std::uint32_t> open_rings, bool halted,
                                 std::optional<std::int64_t> deferred_until, std::int64_t now,
                                 std::string_view device_id, std::span<const std::string> groups);

// A user's deferral request, never past the deadline: min(requested_until, deadline).
std::int64_t clamp_deferral(const Rollout& rollout, std::int64_t requested_until);

// Whether `at` is inside the window (local wall clock); nullopt if its zone is unknown.
std::optional<bool> in_window(const Window& window, const UtcOffsetFn& offsets, std::int64_t at);

// The windows that apply to an endpoint with these groups (see may_install).
std::vector<Window> windows_for(const Rollout& rollout, std::span<const std::string> groups);

// The first instant >= from at which one of `windows` holds (`from` itself if one holds then),
// looking up to 9 days ahead; nullopt if none does (or every zone is unknown).
std::optional<std::int64_t> next_window_open(std::span<const Window> windows,
                                             const UtcOffsetFn& offsets, std::int64_t from);

// "2025-03-09T07:00:00Z": unix seconds as UTC ISO 8601, for reasons and logs.
std::string format_utc(std::int64_t at);

// A point in time as a person types it on a command line (publish --deadline, defer --until):
// unix seconds ("1763800000"), UTC ISO 8601 ("2025-03-09T07:00:00Z", "2025-03-09T07:00Z"), or
// relative to `now`: "+90s", "+15m", "+48h", "+2d" (also "now"). Errc::invalid_argument with a
// message naming the accepted forms otherwise; results outside year 1970..9999 are refused.
[[nodiscard]] Result<std::int64_t> parse_time_spec(std::string_view text, std::int64_t now);

}  // namespace patchswarm::core
