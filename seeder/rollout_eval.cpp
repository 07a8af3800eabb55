#include "seeder/rollout_eval.hpp"

#include <algorithm>
#include <vector>

namespace patchswarm::seeder {

namespace {

// The core lets a ring without members succeed at once. The seeder knows only endpoints that
// have reported, so an empty ring usually means "its members have not reported yet" (a new
// fleet, canaries that are off): no evidence is not good evidence, so an empty ring holds the
// next one closed until a member reports, or the deadline opens everything. Rings already
// announced open stay open.
void hold_behind_empty_rings(const core::Rollout& r, std::span<const std::int64_t> opened_at,
                             std::int64_t now, core::RingProgress& p) {
    if (r.deadline && now >= *r.deadline) return;
    for (std::size_t k = 0; k + 1 < p.open_count && k < r.rings.size(); ++k) {
        if (p.rings[k].members != 0 || k + 1 < opened_at.size()) continue;
        for (std::size_t j = k + 1; j < p.rings.size(); ++j) {
            if (j < opened_at.size()) continue;
            p.rings[j].open = false;
            p.rings[j].opened_at.reset();
        }
        p.open_count = std::max<std::size_t>(k + 1, opened_at.size());
        p.current = p.open_count - 1;
        p.next_open_at = r.deadline;
        p.waiting_for = "ring " + r.rings[k].name + " has no members yet (none has reported)";
        return;
    }
}

}  // namespace

ReleaseRollout evaluate_release(const core::Rollout* rollout, std::int64_t published_at,
                                const std::string& release_id, const std::string& manifest_sha256,
                                const FleetSnapshot& fleet, std::span<const std::int64_t> opened_at,
                                std::span<const HaltRow> halts, std::int64_t now,
                                std::int64_t stale_after) {
    static const core::Rollout kNoRollout;
    const core::Rollout& r = rollout ? *rollout : kNoRollout;
    ReleaseRollout out;
    out.staged = !r.rings.empty();
    std::int64_t resumed_at = 0;
    for (const auto& h : halts) {
        if (h.release_id != release_id || h.manifest_sha256 != manifest_sha256) continue;
        resumed_at = h.resumed_at;
        if (h.active) out.halt = h;
    }

    std::map<std::string_view, const EndpointReleaseRow*> rows;
    for (const auto& row : fleet.releases) {
        // A report about another manifest of the same id (before a re-publish) says nothing
        // about this one.
        if (row.release_id == release_id && row.manifest_sha256 == manifest_sha256) {
            rows.emplace(row.device_id, &row);
        }
    }
    std::vector<core::EndpointFacts> facts;
    facts.reserve(fleet.endpoints.size());
    for (const auto& ep : fleet.endpoints) {
        core::EndpointFacts f;
        f.device_id = ep.device_id;
        f.groups = ep.groups;
        f.reachable = !is_stale(ep, now, stale_after);
        if (const auto it = rows.find(ep.device_id); it != rows.end() && it->second->state) {
            f.state = *it->second->state;
            f.entered_at = it->second->entered_at;
            f.failed_phase = it->second->failed_phase.value_or(core::Phase::install);
            // Forgiven by a resume: counted as still to do, not as failed.
            if (f.state == core::State::failed && resumed_at != 0 && f.entered_at <= resumed_at) {
                f.state = core::State::waiting;
            }
        }
        out.ring_of[ep.device_id] =
            core::ring_of(r, ep.device_id, ep.groups).value_or(r.rings.size());
        facts.push_back(std::move(f));
    }
    out.progress = core::evaluate_rings(r, facts, published_at, now, opened_at);
    hold_behind_empty_rings(r, opened_at, now, out.progress);
    out.feed_halted = out.halt.has_value();
    if (out.staged) {
        const bool halted = out.feed_halted || out.progress.halted;
        const std::size_t open =
            halted ? std::max<std::size_t>(opened_at.size(), 1) : out.progress.open_count;
        out.feed_open_rings = static_cast<std::uint32_t>(std::min(open, r.rings.size() + 1));
    }
    return out;
}

}  // namespace patchswarm::seeder
