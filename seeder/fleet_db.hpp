// The seeder's fleet database (repo/fleet.db, SQLite in WAL mode): the feed sequence, every
// endpoint that has reported (with its pinned device key), and each endpoint's view of each
// release. `serve` writes it; `status` reads it while `serve` runs.
//
// Threading: one FleetDb per thread (it owns one SQLite connection).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/state_machine.hpp"
#include "io/sqlite.hpp"
#include "seeder/report.hpp"

namespace patchswarm::seeder {

struct EndpointRow {
    std::string device_id;
    std::string hostname;
    std::string remote_address;  // where its last report came from
    std::string boot_id;
    std::int64_t first_seen = 0;  // seeder clock, unix seconds
    std::int64_t last_seen = 0;
    std::uint64_t counter = 0;
    std::vector<std::string> groups;  // as last reported (empty for agents before rollouts)
    std::string agent_version;        // as last reported ("" for agents before 0.1.0)
};

struct EndpointReleaseRow {
    std::string device_id;
    std::string release_id;
    std::string manifest_sha256;
    std::optional<core::State> state;  // nullopt if the stored text is not a known state
    std::int64_t entered_at = 0;       // endpoint clock
    double progress = 0;
    std::uint64_t bytes_from_peers = 0;
    std::uint64_t bytes_from_seeder = 0;
    std::optional<std::uint64_t> bytes_from_lan;  // nullopt: the endpoint did not say
    std::optional<std::uint64_t> bytes_from_wan;
    std::uint32_t attempts = 0;
    std::string reason;
    std::optional<core::Phase> failed_phase;      // when failed, if the endpoint said
    std::optional<std::int64_t> deferred_until;   // a local deferral, if the endpoint said
    std::optional<std::int64_t> next_attempt_at;  // when failed: next retry, 0 none (if said)
    std::optional<std::uint32_t> max_attempts;    // the endpoint's attempts in all (if said)
    std::optional<std::string> deferred_by;       // who set the deferral (if said)
};

// A halt of one release (one manifest): latched by serve's auto-halt or set by
// `patchswarm-seeder halt`; `resume` clears `active` and records when, so that failures from
// before the resume no longer count towards auto-halt.
struct HaltRow {
    std::string release_id;
    std::string manifest_sha256;
    bool active = false;
    std::string reason;
    std::string by;  // "auto" or "manual"
    std::int64_t halted_at = 0;
    std::int64_t resumed_at = 0;  // 0: never resumed
};

// The seeder's own copy of a release failed its check (serve found pieces missing or damaged
// after signing): no endpoint can get those pieces from HQ, and status says so per release.
struct SeedProblem {
    std::string release_id;
    std::string manifest_sha256;
    std::string message;            // what the swarm said, e.g. "seed data incomplete ..."
    std::optional<double> present;  // share of the payload present, 0..1, if known
    std::int64_t at = 0;            // seeder clock

    bool operator==(const SeedProblem&) const = default;
};

// Devices revoked by `device revoke` are left out: they are no longer part of the fleet, so they
// count neither toward compliance nor toward ring thresholds (their rows stay in fleet.db).
struct FleetSnapshot {
    std::vector<EndpointRow> endpoints;        // sorted by device id
    std::vector<EndpointReleaseRow> releases;  // sorted by release id, then device id
    std::size_t revoked = 0;                   // endpoints left out because they were revoked
};

struct StateChange {
    std::string release_id;
    std::optional<core::State> from;  // nullopt: first report of this release
    core::State to = core::State::announced;
};

struct ReportOutcome {
    bool new_device = false;
    std::vector<StateChange> changes;
    // Something a rollout evaluation reads changed: a new device, its groups, or a release row's
    // manifest, state, entered_at or failed phase (a release added or dropped included).
    bool facts_changed = false;
    std::int64_t previous_last_seen = 0;  // the endpoint's last report before this one; 0: new
};

class FleetDb {
  public:
    // Opens or creates the database and its schema. Errc::database.
    [[nodiscard]] static Result<std::unique_ptr<FleetDb>> open(const std::filesystem::path& path);

    // Increments and returns the feed sequence: max(last + 1, floor). serve passes the unix time
    // as floor, so a lost or restored fleet.db never makes the sequence go backwards (endpoints
    // would refuse every feed until it caught up).
    [[nodiscard]] Result<std::uint64_t> next_feed_sequence(std::uint64_t floor = 0);
    // The last feed sequence handed out, 0 if none.
    [[nodiscard]] Result<std::uint64_t> feed_sequence();

    // Stores a verified report as the endpoint's complete, current snapshot, in one transaction.
    // Errc::permission if the device id is pinned to another key (trust on first use),
    // Errc::rollback if the counter is not greater than the last accepted one,
    // Errc::database otherwise. On error nothing is changed.
    [[nodiscard]] Result<ReportOutcome> apply_report(const Report& report,
                                                     std::string_view remote_address,
                                                     std::int64_t now);

    [[nodiscard]] Result<FleetSnapshot> snapshot();

    // The site definitions `serve` runs with ("NAME=CIDR,..." each), so that `status` groups
    // endpoints the same way without being told. Replaced whole by each save.
    [[nodiscard]] Result<void> save_sites(const std::vector<std::string>& specs);
    [[nodiscard]] Result<std::vector<std::string>> load_sites();

    // Small settings `serve` shares with `status` (e.g. "stale_after"). nullopt when unset.
    [[nodiscard]] Result<void> set_meta(const std::string& key, const std::string& value);
    [[nodiscard]] Result<std::optional<std::string>> get_meta(const std::string& key);

    // When each ring of a release (this manifest) was announced open, ring 0 first; rings
    // never announced are missing from the end. Used as evaluate_rings' `opened_at`.
    [[nodiscard]] Result<std::vector<std::int64_t>> ring_opens(std::string_view release_id,
                                                               std::string_view manifest_sha256);
    // Records ring `ring` open at `at` unless it already is (the first time wins).
    [[nodiscard]] Result<void> save_ring_open(std::string_view release_id,
                                              std::string_view manifest_sha256, std::size_t ring,
                                              std::int64_t at);

    // The seeder's own copy of a release: a problem found by serve's check, replacing any
    // earlier one for the release; cleared once its copy checks out (or the release goes).
    [[nodiscard]] Result<void> set_seed_problem(const SeedProblem& problem);
    [[nodiscard]] Result<void> clear_seed_problem(std::string_view release_id);
    [[nodiscard]] Result<std::vector<SeedProblem>> seed_problems();

    // Every halt row, active or resumed, by release id.
    [[nodiscard]] Result<std::vector<HaltRow>> halts();
    // Latches a halt (active) for the release's manifest; replaces a resumed one, keeps its
    // resumed_at. An already active halt is left as it is.
    [[nodiscard]] Result<void> halt(std::string_view release_id, std::string_view manifest_sha256,
                                    std::string_view reason, std::string_view by, std::int64_t now);
    // Errc::not_found when the release has no active halt.
    [[nodiscard]] Result<void> resume(std::string_view release_id, std::int64_t now);

    // SQLite's PRAGMA data_version: changes exactly when another connection (another process:
    // `halt`, `resume`, `token create`; or another FleetDb) has committed since the last call,
    // never for this connection's own writes. serve asks it when fleet.db's files change.
    [[nodiscard]] Result<std::int64_t> data_version();

  private:
    explicit FleetDb(std::unique_ptr<io::Db> db) : db_(std::move(db)) {}
    Result<void> create_schema();
    // Columns added after format 1's first schema, added to older databases in place.
    Result<void> migrate();
    Result<FleetSnapshot> read_snapshot();
    Result<void> check_and_pin(const Report& report, ReportOutcome& outcome);
    Result<void> store_report(const Report& report, std::string_view remote_address,
                              std::int64_t now, ReportOutcome& outcome);

    std::unique_ptr<io::Db> db_;
};

}  // namespace patchswarm::seeder
