#include "seeder/rollout_controller.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

namespace patchswarm::seeder {

namespace asio = boost::asio;

namespace {

bool is_staged(const ReleasePolicy& p) {
    return p.rollout && !p.rollout->rings.empty();
}

void keep_earliest(std::optional<std::int64_t>& best, std::int64_t candidate, std::int64_t now) {
    if (candidate > now && (!best || candidate < *best)) best = candidate;
}

// Until fleet.db says otherwise, a staged release has only its first ring open.
std::vector<core::FeedEntry> initial_entries(const std::vector<core::FeedEntry>& listed,
                                             const std::map<std::string, ReleasePolicy>& policies) {
    std::vector<core::FeedEntry> entries = listed;
    for (auto& entry : entries) {
        const auto it = policies.find(entry.id);
        if (it != policies.end() && is_staged(it->second)) entry.open_rings = 1;
    }
    return entries;
}

}  // namespace

Result<RolloutVerdicts> evaluate_rollouts(FleetDb& db, const std::vector<core::FeedEntry>& listed,
                                          const std::map<std::string, ReleasePolicy>& policies,
                                          std::int64_t now, std::int64_t stale_after) {
    auto snapshot = db.snapshot();
    if (!snapshot) return std::unexpected(snapshot.error());
    auto halts = db.halts();
    if (!halts) return std::unexpected(halts.error());
    RolloutVerdicts out;
    bool time_matters = false;  // a staged release that is not halted: staleness counts
    for (const auto& entry : listed) {
        const auto it = policies.find(entry.id);
        if (it == policies.end()) continue;  // could not be loaded: not served
        const ReleasePolicy& policy = it->second;
        auto opened = db.ring_opens(entry.id, entry.manifest_sha256);
        if (!opened) return fail(opened.error().code, entry.id + ": " + opened.error().message);
        RolloutVerdicts::Release r{
            entry.id, entry.manifest_sha256,
            evaluate_release(policy.rollout ? &*policy.rollout : nullptr, policy.created, entry.id,
                             entry.manifest_sha256, *snapshot, *opened, *halts, now, stale_after),
            opened->size()};
        if (is_staged(policy) && !r.rollout.halt && !r.rollout.progress.halted) {
            time_matters = true;
            if (r.rollout.progress.next_open_at) {
                keep_earliest(out.next_time_rule, *r.rollout.progress.next_open_at, now);
            }
            if (policy.rollout->deadline)
                keep_earliest(out.next_time_rule, *policy.rollout->deadline, now);
        }
        out.releases.push_back(std::move(r));
    }
    if (time_matters) {
        // is_stale: stale once now - last_seen > stale_after.
        for (const auto& ep : snapshot->endpoints) {
            keep_earliest(out.next_time_rule, ep.last_seen + stale_after + 1, now);
        }
    }
    return out;
}

struct RolloutController::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, io::Env& env, FleetDb& db, std::filesystem::path path,
         std::int64_t stale_after, OnChanged on_changed)
        : io(io),
          env(env),
          db(db),
          fleet_db(std::move(path)),
          stale_after(stale_after),
          on_changed(std::move(on_changed)),
          timer(io) {}

    ~Impl() {
        // The job still running (if any) reads through `reader`: let it finish first.
        pool.join();
    }

    asio::io_context& io;
    io::Env& env;
    FleetDb& db;
    const std::filesystem::path fleet_db;
    const std::int64_t stale_after;
    OnChanged on_changed;
    asio::steady_timer timer;  // the next time rule

    std::vector<core::FeedEntry> listed;
    std::map<std::string, ReleasePolicy> policies;
    std::uint64_t generation = 0;  // bumped by set_releases: older results are dropped

    std::vector<core::FeedEntry> feed_entries;
    std::vector<std::string> halted;

    bool in_flight = false;
    bool dirty = false;         // a request came while an evaluation ran
    bool must_publish = false;  // the listed releases changed since the last on_changed
    bool stopped = false;
    std::uint64_t evaluations = 0;

    std::unique_ptr<FleetDb> reader;  // the worker thread's connection, opened there
    asio::thread_pool pool{1};        // last: joined first

    void start() {
        if (stopped) return;
        if (in_flight) {
            dirty = true;
            return;
        }
        in_flight = true;
        dirty = false;
        const std::int64_t now = env.now_unix();
        std::weak_ptr<Impl> weak = weak_from_this();
        asio::post(pool, [this, weak, gen = generation, listed = listed, policies = policies, now] {
            // `this` is alive here: ~Impl joins the pool before anything goes.
            Result<RolloutVerdicts> verdicts = fail(Errc::database, "no connection");
            if (!reader) {
                auto opened = FleetDb::open(fleet_db);
                if (opened)
                    reader = std::move(*opened);
                else
                    verdicts = std::unexpected(opened.error());
            }
            if (reader) verdicts = evaluate_rollouts(*reader, listed, policies, now, stale_after);
            asio::post(io, [weak, gen, now, verdicts = std::move(verdicts)]() mutable {
                if (auto self = weak.lock()) self->on_done(gen, now, std::move(verdicts));
            });
        });
    }

    void on_done(std::uint64_t gen, std::int64_t now, Result<RolloutVerdicts> verdicts) {
        in_flight = false;
        if (stopped) return;
        ++evaluations;
        if (gen != generation) {
            start();  // the catalog changed meanwhile: those verdicts are for other releases
            return;
        }
        apply(std::move(verdicts), now);
        if (dirty) start();
    }

    // Database trouble is logged and leaves the latched state as it is; a later event (or the
    // owner's coarse re-check) tries again.
    void apply(Result<RolloutVerdicts> verdicts, std::int64_t now) {
        bool changed = false;
        if (!verdicts) {
            spdlog::error("rollout: cannot read fleet.db: {}", verdicts.error().message);
        } else {
            changed = latch(*verdicts, now);
            arm_timer(verdicts->next_time_rule);
        }
        if (changed || must_publish) {
            must_publish = false;
            on_changed();
        }
    }

    // Rings to open, halts to latch: both land in fleet.db, and the feed lists the result.
    bool latch(const RolloutVerdicts& verdicts, std::int64_t now) {
        std::vector<core::FeedEntry> entries = listed;
        std::vector<std::string> now_halted;
        for (auto& entry : entries) {
            const auto v = std::find_if(verdicts.releases.begin(), verdicts.releases.end(),
                                        [&](const auto& r) { return r.id == entry.id; });
            if (v == verdicts.releases.end()) continue;
            const ReleaseRollout& ro = v->rollout;
            if (ro.progress.halted && !ro.halt) {
                spdlog::warn("release {} halted: {}", entry.id, ro.progress.halt_reason);
                if (auto ok = db.halt(entry.id, entry.manifest_sha256, ro.progress.halt_reason,
                                      "auto", now);
                    !ok) {
                    spdlog::error("rollout {}: cannot latch the halt: {}", entry.id,
                                  ok.error().message);
                }
                now_halted.push_back(entry.id);
            } else if (ro.halt) {
                now_halted.push_back(entry.id);
            }
            if (ro.feed_open_rings) {
                for (std::size_t ring = v->latched_rings; ring < *ro.feed_open_rings; ++ring) {
                    const auto at = ro.progress.rings[ring].opened_at.value_or(now);
                    spdlog::info("release {}: ring {} open", entry.id,
                                 ro.progress.rings[ring].name);
                    if (auto ok = db.save_ring_open(entry.id, entry.manifest_sha256, ring, at);
                        !ok) {
                        spdlog::error("rollout {}: {}", entry.id, ok.error().message);
                    }
                }
                entry.open_rings = ro.feed_open_rings;
            }
        }
        // `retry` requests (fleet.db, written by the CLI) ride along in the signed feed.
        if (auto retries = db.retries(); !retries) {
            spdlog::error("rollout: cannot read retries: {}", retries.error().message);
        } else {
            for (auto& entry : entries) {
                for (const auto& r : *retries) {
                    if (r.release_id != entry.id || r.manifest_sha256 != entry.manifest_sha256) {
                        continue;
                    }
                    entry.retry = core::RetryRequest{r.generation, r.devices};
                }
            }
        }
        const bool changed = entries != feed_entries || now_halted != halted;
        feed_entries = std::move(entries);
        halted = std::move(now_halted);
        return changed;
    }

    void arm_timer(std::optional<std::int64_t> at) {
        timer.cancel();
        if (!at) return;
        // At least a second: a rule due "now" by the wall clock is not re-run in a busy loop.
        const auto delay = std::chrono::seconds(std::max<std::int64_t>(*at - env.now_unix(), 1));
        timer.expires_after(delay);
        spdlog::debug("rollout: next time rule in {}s", delay.count());
        timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->start();
        });
    }
};

RolloutController::RolloutController(asio::io_context& io, io::Env& env, FleetDb& db,
                                     std::filesystem::path fleet_db, std::int64_t stale_after,
                                     OnChanged on_changed)
    : impl_(std::make_shared<Impl>(io, env, db, std::move(fleet_db), stale_after,
                                   std::move(on_changed))) {}

RolloutController::~RolloutController() {
    stop();
}

void RolloutController::set_releases(const std::vector<core::FeedEntry>& listed,
                                     const std::map<std::string, ReleasePolicy>& policies,
                                     bool now_on_this_thread) {
    Impl& d = *impl_;
    d.listed = listed;
    d.policies = policies;
    ++d.generation;
    d.feed_entries = initial_entries(listed, policies);
    d.must_publish = true;
    if (now_on_this_thread && !d.in_flight) {
        const std::int64_t now = d.env.now_unix();
        d.apply(evaluate_rollouts(d.db, d.listed, d.policies, now, d.stale_after), now);
        ++d.evaluations;
        return;
    }
    d.start();
}

void RolloutController::request_evaluation(std::string_view why) {
    spdlog::debug("rollout: evaluate ({})", why);
    impl_->start();
}

const std::vector<core::FeedEntry>& RolloutController::feed_entries() const {
    return impl_->feed_entries;
}

const std::vector<std::string>& RolloutController::halted() const {
    return impl_->halted;
}

std::uint64_t RolloutController::evaluations() const {
    return impl_->evaluations;
}

void RolloutController::stop() {
    impl_->stopped = true;
    impl_->timer.cancel();
}

}  // namespace patchswarm::seeder
