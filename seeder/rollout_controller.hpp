// The rollout controller: turns fleet.db's facts into what the feed says of each staged release
// (open_rings, halted), with seeder/rollout_eval.hpp. It latches what it announces: ring
// openings and auto-halts are written to fleet.db, so they survive a restart and never close
// again by themselves.
//
// Driven by events, not by a clock tick: the owner calls request_evaluation() when something an
// evaluation reads may have changed (a report whose facts changed, fleet.db written by another
// process: `halt` / `resume`; the catalog via set_releases()). The only time-driven evaluation is
// a one-shot timer armed for the next instant a time rule can change the answer: a ring's soak
// ends, the deadline passes, or an endpoint turns stale (evaluate_release tells the first two
// through next_open_at; staleness is last report + stale_after).
//
// The fleet snapshot is read on a worker thread through a connection of its own (FleetDb is one
// per thread), so a big fleet never stalls the network thread; one evaluation runs at a time and
// requests that arrive meanwhile fold into one more. Latching (writes) and the feed callback run
// on the io_context thread.
//
// Threading: construct, call and destroy on the io_context thread; `on_changed` runs there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/feed.hpp"
#include "io/env.hpp"
#include "seeder/catalog.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/rollout_eval.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::seeder {

// One evaluation's answer for every listed release that has a policy.
struct RolloutVerdicts {
    struct Release {
        std::string id;
        std::string manifest_sha256;
        ReleaseRollout rollout;
        std::size_t latched_rings = 0;  // ring openings already in fleet.db
    };
    std::vector<Release> releases;
    // The next instant (unix seconds) at which time alone may change a verdict; nullopt: none.
    std::optional<std::int64_t> next_time_rule;
};

// Reads fleet.db through `db` and evaluates each release of `listed` that `policies` has.
// Errc::database when fleet.db cannot be read. Pure apart from the reads; any thread.
[[nodiscard]] Result<RolloutVerdicts> evaluate_rollouts(
    FleetDb& db, const std::vector<core::FeedEntry>& listed,
    const std::map<std::string, ReleasePolicy>& policies, std::int64_t now,
    std::int64_t stale_after);

class RolloutController {
  public:
    // Called when the feed's entries or halted set changed (or must be signed anyway after
    // set_releases): the owner re-signs the feed from feed_entries() and halted().
    using OnChanged = std::function<void()>;

    // `db` (the io thread's connection) and `env` must outlive the controller. `fleet_db` is
    // opened again on the worker thread for reading.
    RolloutController(boost::asio::io_context& io, io::Env& env, FleetDb& db,
                      std::filesystem::path fleet_db, std::int64_t stale_after,
                      OnChanged on_changed);
    ~RolloutController();
    RolloutController(const RolloutController&) = delete;
    RolloutController& operator=(const RolloutController&) = delete;

    // The catalog changed: these are the releases to announce now. Until fleet.db says
    // otherwise a staged release has only its first ring open (a missing open_rings would open
    // every ring). With `now_on_this_thread` (start-up, before anything is served) the
    // evaluation runs at once on the calling thread and on_changed is called before this
    // returns; otherwise it runs on the worker and on_changed follows when it is done, even if
    // nothing changed (the listed releases did).
    void set_releases(const std::vector<core::FeedEntry>& listed,
                      const std::map<std::string, ReleasePolicy>& policies,
                      bool now_on_this_thread = false);

    // Something an evaluation reads may have changed (`why` is logged at debug level).
    void request_evaluation(std::string_view why);

    // What the feed says: the listed releases with open_rings, and the halted release ids.
    const std::vector<core::FeedEntry>& feed_entries() const;
    const std::vector<std::string>& halted() const;

    // Evaluations finished since construction (for tests and logs).
    std::uint64_t evaluations() const;

    // Cancels the timer and drops results still to come; on_changed is not called again.
    void stop();

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;  // shared with the worker's and the timer's handlers
};

}  // namespace patchswarm::seeder
