// The endpoint's decisions, all of them, as a pure object: which manifest to fetch, when a new
// manifest replaces a release, when a release is rejected, what the rollout policy says, when to
// fall back to the seeder's web seed, when to save resume data, and the next instant at which any
// of that can change (the agent arms one one-shot timer for it: no periodic tick).
//
// Built on the per-release step function (core/state_machine.hpp). Nothing here reads a clock,
// touches disk or network: every call takes `now` (unix seconds) and returns Actions. The agent
// carries an Action out in order:
//   1. if `save` is set, persist it (with `new_row`: the whole release row, manifest and all);
//      if that fails, do nothing else for that Action (nor the rest for its release);
//   2. call committed(action): only then does the controller's copy of the record move;
//   3. carry out `commands` in order;
//   4. with `reevaluate`, call evaluate(id) soon (posted, as the state changed).
//
// Threading: one thread (the agent's io_context thread). Owns its records; `offsets` must outlive
// it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "core/state_machine.hpp"

namespace patchswarm::core {

struct ControllerConfig {
    RetryPolicy retry;
    std::int64_t webseed_after_s = 20;      // no progress this long: add the web seed
    std::int64_t resume_save_every_s = 10;  // while downloading: what a kill -9 may lose
    bool reboot_command = false;            // a reboot command is configured
    std::string device_id;
    std::vector<std::string> groups;
};

// What the last accepted feed says about staged rollouts.
struct FeedPolicy {
    std::map<std::string, std::optional<std::uint32_t>> open_rings;  // release id -> open rings
    std::set<std::string> halted;
    std::map<std::string, RetryRequest> retries;  // release id -> IT's latest retry request
};
FeedPolicy policy_of(const Feed& feed);

// The facts of one release the controller decides on (from its verified manifest).
struct ReleaseInfo {
    std::string id;
    std::string manifest_sha256;
    std::uint64_t sequence = 0;
    ReleaseFacts facts;
    std::optional<Rollout> rollout;
    bool has_torrent = false;
};
ReleaseInfo release_info(const Manifest& m, const std::string& manifest_sha256, bool has_torrent);

struct Action {
    std::string id;  // "" for session-wide commands (SaveResumeData)
    std::optional<ReleaseRecord> save;
    bool new_row = false;  // `save` is a new release: persist its whole row, replacing any older
    std::vector<Command> commands;
    bool reevaluate = false;                  // the state changed: evaluate(id) again soon
    std::optional<ReleaseRecord> transition;  // the record before, when the state changed (logs)
};

class EndpointController {
  public:
    EndpointController(ControllerConfig config, UtcOffsetFn offsets);

    // ---- start-up ----------------------------------------------------------------------------
    // A release loaded from state.db, with its stored deferral.
    void load(ReleaseInfo info, ReleaseRecord record, std::optional<std::int64_t> deferred_until);
    // Resumed for every loaded release (and leftovers of an interrupted replace cleared).
    std::vector<Action> resume(std::int64_t now);

    // ---- facts -------------------------------------------------------------------------------
    // The boot id, read at start and after a reboot command finished; re-evaluates everything.
    std::vector<Action> set_boot_id(std::string boot_id, std::int64_t now);
    // A retry request of a generation the release has not seen re-arms it once if it is failed
    // (also after giving up) and the request names this device or every device: attempts start
    // again from 1, now. Its generation is saved either way, so a restart does not repeat it.
    std::vector<Action> set_feed_policy(FeedPolicy policy, std::int64_t now);
    // A deferral was persisted (nullopt: cleared).
    std::vector<Action> set_deferral(const std::string& id, std::optional<std::int64_t> until,
                                     std::int64_t now);
    void joined_swarm(const std::string& id, std::int64_t now);
    void left_swarm(const std::string& id);
    // The swarm's byte counters for the release moved.
    void progressed(const std::string& id, std::int64_t now);
    void torrent_stored(const std::string& id);

    // ---- manifests ---------------------------------------------------------------------------
    // Should the agent fetch this announced manifest? No when it is the one we hold, or while a
    // worker (hash, install, verify) runs for the release: it is replaced after that step.
    bool wants_manifest(const std::string& id, const std::string& manifest_sha256) const;
    // The sequence of the manifest held for `id` (rollback check of a newer one).
    std::optional<std::uint64_t> sequence_of(const std::string& id) const;
    // A verified manifest: announces a new release or replaces the held one (the new row is
    // saved first, then the old files go). Nothing when it is the sequence already held.
    std::vector<Action> admit(ReleaseInfo info, std::int64_t now);

    // ---- events ------------------------------------------------------------------------------
    std::vector<Action> handle(const std::string& id, const Event& event, std::int64_t now);
    // The rollout verdict now, as a Tick.
    std::vector<Action> evaluate(const std::string& id, std::int64_t now);
    // The one-shot timer fired: whatever is due at `now`.
    std::vector<Action> on_timer(std::int64_t now);
    // The next instant something is due (policy, retry, web seed, resume save); nullopt: only
    // an event can change anything. May be <= now when something is due already.
    std::optional<std::int64_t> next_wakeup(std::int64_t now) const;

    void committed(const Action& action);

    // ---- queries -----------------------------------------------------------------------------
    const ReleaseRecord* record(const std::string& id) const;
    std::optional<std::int64_t> deferred_until(const std::string& id) const;
    std::vector<std::string> ids() const;

  private:
    struct Entry {
        ReleaseInfo info;
        ReleaseRecord record;
        std::optional<std::int64_t> deferred_until;
        bool in_swarm = false;
        bool worker_running = false;
        std::int64_t last_progress_at = 0;
        std::int64_t web_seed_added_at = 0;
        std::optional<std::int64_t> next_check_at;  // the policy verdict may change then
    };
    Action step(Entry& e, const Event& event, std::int64_t now);
    ev::Tick policy_tick(Entry& e, std::int64_t now);
    std::vector<Action> evaluate_all(std::int64_t now);
    static std::optional<std::int64_t> due_of(const Entry& e, std::int64_t now);

    ControllerConfig config_;
    UtcOffsetFn offsets_;
    std::map<std::string, Entry> entries_;
    std::map<std::string, Entry> pending_;  // admitted, not yet committed
    FeedPolicy feed_policy_;
    std::string boot_id_;
    std::int64_t last_resume_save_at_ = 0;
    // Resume data is saved only when a download moved since the last save: a stalled download
    // has nothing new to lose, and wakes nobody.
    bool progressed_since_save_ = false;
};

}  // namespace patchswarm::core
