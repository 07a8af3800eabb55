#include "core/endpoint_controller.hpp"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace patchswarm::core {

namespace {

// Work that occupies the release's one worker slot until its completion event arrives.
bool is_work(const Command& c) {
    return std::holds_alternative<cmd::VerifyPayload>(c) ||
           std::holds_alternative<cmd::RunInstall>(c) ||
           std::holds_alternative<cmd::RunVerify>(c) ||
           std::holds_alternative<cmd::ProbeInstall>(c) ||
           std::holds_alternative<cmd::AwaitInstall>(c);
}

bool is_completion(const Event& e) {
    return std::holds_alternative<ev::PayloadVerified>(e) ||
           std::holds_alternative<ev::InstallFinished>(e) ||
           std::holds_alternative<ev::VerifyFinished>(e) ||
           std::holds_alternative<ev::InstallObserved>(e);
}

void keep_min(std::optional<std::int64_t>& best, std::optional<std::int64_t> candidate) {
    if (candidate && (!best || *candidate < *best)) best = candidate;
}

}  // namespace

FeedPolicy policy_of(const Feed& feed) {
    FeedPolicy p;
    for (const auto& e : feed.releases) p.open_rings[e.id] = e.open_rings;
    p.halted.insert(feed.halted.begin(), feed.halted.end());
    return p;
}

ReleaseInfo release_info(const Manifest& m, const std::string& manifest_sha256, bool has_torrent) {
    ReleaseInfo info;
    info.id = m.id;
    info.manifest_sha256 = manifest_sha256;
    info.sequence = m.sequence;
    info.facts.reboot_required = m.reboot == RebootPolicy::required;
    info.facts.reboot_if_3010 = m.reboot != RebootPolicy::none;
    info.facts.has_verify = m.verify.has_value();
    info.facts.rerun_safe = m.idempotent;
    info.rollout = m.rollout;
    info.has_torrent = has_torrent;
    return info;
}

EndpointController::EndpointController(ControllerConfig config, UtcOffsetFn offsets)
    : config_(std::move(config)), offsets_(std::move(offsets)) {}

void EndpointController::load(ReleaseInfo info, ReleaseRecord record,
                              std::optional<std::int64_t> deferred_until) {
    Entry e;
    e.info = std::move(info);
    e.record = std::move(record);
    e.deferred_until = deferred_until;
    const std::string id = e.record.id;
    entries_[id] = std::move(e);
}

std::vector<Action> EndpointController::resume(std::int64_t now) {
    std::vector<Action> out;
    last_resume_save_at_ = now;
    for (auto& [id, e] : entries_) {
        e.last_progress_at = now;
        Action a = step(e, ev::Resumed{}, now);
        if (e.record.state == State::announced && !e.info.has_torrent) {
            // Nothing of this manifest was fetched yet: whatever is in its folder belongs to the
            // release it replaced (the agent stopped between saving the new row and deleting the
            // old files), and its resume file names another torrent.
            a.commands.insert(a.commands.begin(), cmd::RemoveReleaseFiles{});
        }
        out.push_back(std::move(a));
    }
    return out;
}

std::vector<Action> EndpointController::set_boot_id(std::string boot_id, std::int64_t now) {
    boot_id_ = std::move(boot_id);
    return evaluate_all(now);
}

std::vector<Action> EndpointController::set_feed_policy(FeedPolicy policy, std::int64_t now) {
    feed_policy_ = std::move(policy);
    return evaluate_all(now);
}

std::vector<Action> EndpointController::set_deferral(const std::string& id,
                                                     std::optional<std::int64_t> until,
                                                     std::int64_t now) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return {};
    it->second.deferred_until = until;
    return evaluate(id, now);
}

void EndpointController::joined_swarm(const std::string& id, std::int64_t now) {
    if (auto it = entries_.find(id); it != entries_.end()) {
        it->second.in_swarm = true;
        it->second.last_progress_at = now;
    }
    // The resume-save period counts from the first download, not from the epoch.
    if (last_resume_save_at_ == 0) last_resume_save_at_ = now;
}

void EndpointController::left_swarm(const std::string& id) {
    if (auto it = entries_.find(id); it != entries_.end()) it->second.in_swarm = false;
}

void EndpointController::progressed(const std::string& id, std::int64_t now) {
    if (auto it = entries_.find(id); it != entries_.end()) {
        it->second.last_progress_at = now;
        progressed_since_save_ = true;
    }
}

void EndpointController::torrent_stored(const std::string& id) {
    if (auto it = entries_.find(id); it != entries_.end()) it->second.info.has_torrent = true;
}

bool EndpointController::wants_manifest(const std::string& id,
                                        const std::string& manifest_sha256) const {
    auto it = entries_.find(id);
    if (it == entries_.end()) return true;
    return it->second.info.manifest_sha256 != manifest_sha256 && !it->second.worker_running;
}

std::optional<std::uint64_t> EndpointController::sequence_of(const std::string& id) const {
    auto it = entries_.find(id);
    if (it == entries_.end()) return std::nullopt;
    return it->second.info.sequence;
}

std::vector<Action> EndpointController::admit(ReleaseInfo info, std::int64_t now) {
    auto old = entries_.find(info.id);
    if (old != entries_.end() && old->second.info.sequence == info.sequence) return {};
    ReleaseRecord rec;
    rec.id = info.id;
    rec.state = State::announced;
    rec.entered_at = now;
    auto announced = on_event(rec, info.facts, ev::Announced{}, now, config_.retry);
    Action a;
    a.id = info.id;
    a.save = announced.record;
    a.new_row = true;
    // Order matters for a crash: the new row is saved first (step 1 of every Action), so the old
    // files go only once nothing on disk refers to them any more.
    if (old != entries_.end()) a.commands.push_back(cmd::RemoveReleaseFiles{});
    for (auto& c : announced.commands) a.commands.push_back(std::move(c));
    Entry e;
    e.info = std::move(info);
    e.record = announced.record;
    e.last_progress_at = now;
    pending_[e.info.id] = std::move(e);
    return {std::move(a)};
}

std::vector<Action> EndpointController::handle(const std::string& id, const Event& event,
                                               std::int64_t now) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return {};
    if (is_completion(event)) it->second.worker_running = false;
    return {step(it->second, event, now)};
}

std::vector<Action> EndpointController::evaluate(const std::string& id, std::int64_t now) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return {};
    return {step(it->second, policy_tick(it->second, now), now)};
}

std::vector<Action> EndpointController::evaluate_all(std::int64_t now) {
    std::vector<Action> out;
    for (auto& [id, e] : entries_) out.push_back(step(e, policy_tick(e, now), now));
    return out;
}

std::vector<Action> EndpointController::on_timer(std::int64_t now) {
    std::vector<Action> out = evaluate_all(now);
    bool any_downloading = false;
    for (auto& [id, e] : entries_) {
        if (!e.in_swarm || e.record.state != State::downloading) continue;
        any_downloading = true;
        // Again after every further quiet period: the seeder refuses peers that are not their
        // site's gateway until the site stalls, and libtorrent gives up on a refused web seed.
        const std::int64_t quiet_since = std::max(e.last_progress_at, e.web_seed_added_at);
        if (now - quiet_since >= config_.webseed_after_s) {
            e.web_seed_added_at = now;
            Action a;
            a.id = id;
            a.commands.push_back(cmd::AddWebSeed{});
            out.push_back(std::move(a));
        }
    }
    if (any_downloading && progressed_since_save_ &&
        now - last_resume_save_at_ >= config_.resume_save_every_s) {
        last_resume_save_at_ = now;
        progressed_since_save_ = false;
        Action a;
        a.commands.push_back(cmd::SaveResumeData{});
        out.push_back(std::move(a));
    }
    return out;
}

std::optional<std::int64_t> EndpointController::due_of(const Entry& e, std::int64_t now) {
    std::optional<std::int64_t> due;
    switch (e.record.state) {
        case State::verified:
        case State::waiting:
            keep_min(due, e.next_check_at);
            break;
        case State::failed:
            // A retry already due waits only for the policy (an install retry outside its window).
            if (e.record.next_attempt_at > now) keep_min(due, e.record.next_attempt_at);
            if (e.record.failed_phase != Phase::download) keep_min(due, e.next_check_at);
            break;
        case State::reboot_pending:
            keep_min(due, e.next_check_at);
            // A retry already due waits only for the policy (next_check_at), as above.
            if (e.record.reboot_requested_at != 0 &&
                e.record.reboot_requested_at + kRebootRetryS > now) {
                keep_min(due, e.record.reboot_requested_at + kRebootRetryS);
            }
            break;
        default:
            break;
    }
    return due;
}

std::optional<std::int64_t> EndpointController::next_wakeup(std::int64_t now) const {
    std::optional<std::int64_t> best;
    bool any_downloading = false;
    for (const auto& [id, e] : entries_) {
        keep_min(best, due_of(e, now));
        if (e.in_swarm && e.record.state == State::downloading) {
            any_downloading = true;
            keep_min(best,
                     std::max(e.last_progress_at, e.web_seed_added_at) + config_.webseed_after_s);
        }
    }
    if (any_downloading && progressed_since_save_) {
        keep_min(best, last_resume_save_at_ + config_.resume_save_every_s);
    }
    return best;
}

void EndpointController::committed(const Action& action) {
    if (action.new_row) {
        auto p = pending_.find(action.id);
        if (p == pending_.end()) return;
        entries_[action.id] = std::move(p->second);
        pending_.erase(p);
    }
    auto it = entries_.find(action.id);
    if (it == entries_.end()) return;
    if (action.save) it->second.record = *action.save;
    if (std::any_of(action.commands.begin(), action.commands.end(), is_work)) {
        it->second.worker_running = true;
    }
}

Action EndpointController::step(Entry& e, const Event& event, std::int64_t now) {
    auto s = on_event(e.record, e.info.facts, event, now, config_.retry);
    Action a;
    a.id = e.record.id;
    if (s.changed) a.save = s.record;
    if (s.record.state != e.record.state) {
        a.transition = e.record;
        a.reevaluate = true;
    }
    for (auto& c : s.commands) {
        // A duplicate (a second "download complete" while the hash runs) must not start a
        // second worker on the same folder.
        if (e.worker_running && is_work(c)) continue;
        a.commands.push_back(std::move(c));
    }
    return a;
}

ev::Tick EndpointController::policy_tick(Entry& e, std::int64_t now) {
    const std::string& id = e.record.id;
    std::optional<std::uint32_t> open_rings;
    if (auto it = feed_policy_.open_rings.find(id); it != feed_policy_.open_rings.end()) {
        open_rings = it->second;
    }
    const auto verdict = endpoint_verdict(e.info.rollout ? &*e.info.rollout : nullptr, offsets_,
                                          open_rings, feed_policy_.halted.contains(id),
                                          e.deferred_until, now, config_.device_id, config_.groups);
    e.next_check_at = std::nullopt;
    keep_min(e.next_check_at, verdict.install.next_check_at);
    keep_min(e.next_check_at, verdict.reboot.next_check_at);
    ev::Tick t;
    t.boot_id = boot_id_;
    t.install_allowed = verdict.install.allowed;
    t.wait_reason = verdict.install.wait_reason;
    if (!verdict.reboot.allowed) {
        const std::string& why = verdict.reboot.wait_reason;
        t.reboot_wait_reason = why.starts_with("reboot") ? why : "reboot waits: " + why;
    } else if (!config_.reboot_command) {
        // The default never reboots a machine: it records the need and waits for a person.
        t.reboot_wait_reason =
            verdict.reboot.by_deadline
                ? "reboot required: deadline passed, no reboot command configured"
                : "reboot required: no reboot command configured";
    } else {
        t.reboot_allowed = true;
    }
    return t;
}

const ReleaseRecord* EndpointController::record(const std::string& id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : &it->second.record;
}

std::optional<std::int64_t> EndpointController::deferred_until(const std::string& id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? std::nullopt : it->second.deferred_until;
}

std::vector<std::string> EndpointController::ids() const {
    std::vector<std::string> out;
    for (const auto& [id, e] : entries_) out.push_back(id);
    return out;
}

}  // namespace patchswarm::core
