// core::EndpointController with plain integer times: every decision the agent used to take by
// itself (replace, reject, web seed fallback, resume saves, when to look again) as Actions, and
// the persist-then-commit contract that keeps the controller's records in step with state.db.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/deadline_policy.hpp"
#include "core/endpoint_controller.hpp"

using namespace patchswarm::core;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000;  // a Wednesday, 05:20 UTC

UtcOffsetFn utc() {
    return [](std::string_view zone, std::int64_t) -> std::optional<std::int32_t> {
        if (zone == "UTC") return 0;
        return std::nullopt;
    };
}

ControllerConfig config() {
    ControllerConfig c;
    c.retry.backoff_base_s = 30;
    c.webseed_after_s = 20;
    c.resume_save_every_s = 10;
    c.device_id = std::string(32, 'a');
    c.groups = {"office"};
    return c;
}

ReleaseInfo info(std::uint64_t sequence, std::string sha = "", bool has_torrent = false) {
    ReleaseInfo i;
    i.id = "KB1";
    i.sequence = sequence;
    i.manifest_sha256 = sha.empty() ? std::string(64, static_cast<char>('0' + sequence)) : sha;
    i.has_torrent = has_torrent;
    return i;
}

template <typename C>
bool has(const Action& a) {
    return std::any_of(a.commands.begin(), a.commands.end(),
                       [](const Command& c) { return std::holds_alternative<C>(c); });
}

template <typename C>
std::size_t index_of(const Action& a) {
    for (std::size_t i = 0; i < a.commands.size(); ++i) {
        if (std::holds_alternative<C>(a.commands[i])) return i;
    }
    return a.commands.size();
}

// What the agent does with Actions, minus the I/O: every save succeeds.
void commit_all(EndpointController& c, const std::vector<Action>& actions) {
    for (const auto& a : actions) c.committed(a);
}

// A controller holding KB1 in `state` (committed), with its torrent.
EndpointController holding(State state, std::optional<Rollout> rollout = std::nullopt) {
    EndpointController c(config(), utc());
    ReleaseRecord rec;
    rec.id = "KB1";
    rec.state = state;
    rec.entered_at = kT0 - 100;
    auto i = info(1, "", true);
    i.rollout = std::move(rollout);
    c.load(std::move(i), rec, std::nullopt);
    return c;
}

}  // namespace

TEST_CASE("a new manifest is announced by saving its whole row before anything else", "[core]") {
    EndpointController c(config(), utc());
    auto actions = c.admit(info(1), kT0);
    REQUIRE(actions.size() == 1);
    const Action& a = actions[0];
    REQUIRE(a.save);
    CHECK(a.new_row);
    CHECK(a.save->state == State::announced);
    CHECK(a.save->entered_at == kT0);
    CHECK(has<cmd::StartDownload>(a));
    CHECK(has<cmd::SendReport>(a));
    CHECK_FALSE(has<cmd::RemoveReleaseFiles>(a));
    // Until the agent says the row is on disk, the controller holds nothing.
    CHECK(c.record("KB1") == nullptr);
    c.committed(a);
    REQUIRE(c.record("KB1") != nullptr);
    CHECK(c.sequence_of("KB1") == 1u);
}

TEST_CASE("a replacing manifest saves the new record first and removes the old files after",
          "[core]") {
    auto c = holding(State::effective);
    auto actions = c.admit(info(2), kT0);
    REQUIRE(actions.size() == 1);
    const Action& a = actions[0];
    REQUIRE(a.save);
    CHECK(a.new_row);
    CHECK(a.save->state == State::announced);
    // Commands run only after the save, and the old files go before the new download starts.
    REQUIRE(has<cmd::RemoveReleaseFiles>(a));
    CHECK(index_of<cmd::RemoveReleaseFiles>(a) < index_of<cmd::StartDownload>(a));
    // A failed save (no committed()): the old release is still the one held.
    CHECK(c.sequence_of("KB1") == 1u);
    CHECK(c.record("KB1")->state == State::effective);
    c.committed(a);
    CHECK(c.sequence_of("KB1") == 2u);
    CHECK(c.record("KB1")->state == State::announced);
}

TEST_CASE("the manifest already held is not admitted again", "[core]") {
    auto c = holding(State::downloading);
    CHECK(c.admit(info(1), kT0).empty());
    CHECK_FALSE(c.wants_manifest("KB1", info(1).manifest_sha256));
    CHECK(c.wants_manifest("KB1", std::string(64, 'f')));
    CHECK(c.wants_manifest("KB2", std::string(64, 'f')));
}

TEST_CASE(
    "while a worker runs for a release, no newer manifest is fetched and no second "
    "worker starts",
    "[core]") {
    auto c = holding(State::downloading);
    auto done = c.handle("KB1", ev::DownloadComplete{}, kT0);
    REQUIRE(done.size() == 1);
    REQUIRE(has<cmd::VerifyPayload>(done[0]));
    commit_all(c, done);
    CHECK_FALSE(c.wants_manifest("KB1", std::string(64, 'f')));
    auto again = c.handle("KB1", ev::DownloadComplete{}, kT0 + 1);
    REQUIRE(again.size() == 1);
    CHECK_FALSE(has<cmd::VerifyPayload>(again[0]));
    auto verified = c.handle("KB1", ev::PayloadVerified{true, ""}, kT0 + 2);
    commit_all(c, verified);
    CHECK(c.wants_manifest("KB1", std::string(64, 'f')));
    CHECK(c.record("KB1")->state == State::verified);
}

TEST_CASE("a rejection is a persisted transition that leaves the swarm and reports", "[core]") {
    auto c = holding(State::announced);
    auto actions = c.handle("KB1", ev::Rejected{"torrent: wrong info-hash"}, kT0);
    REQUIRE(actions.size() == 1);
    const Action& a = actions[0];
    REQUIRE(a.save);
    CHECK(a.save->state == State::rejected);
    CHECK(a.save->reason == "torrent: wrong info-hash");
    CHECK(a.save->entered_at == kT0);
    CHECK(has<cmd::LeaveSwarm>(a));
    CHECK(has<cmd::SendReport>(a));
    CHECK(a.transition);
    commit_all(c, actions);
    // Rejected is terminal: nothing moves it again.
    auto later = c.handle("KB1", ev::Announced{}, kT0 + 5);
    REQUIRE(later.size() == 1);
    CHECK_FALSE(later[0].save);
}

TEST_CASE(
    "with no progress for webseed_after_s the web seed is added, and again after every "
    "further quiet period",
    "[core]") {
    auto c = holding(State::downloading);
    c.joined_swarm("KB1", kT0);
    // Nothing arrived, so there is no resume data worth saving: the first wakeup is the web seed.
    REQUIRE(c.next_wakeup(kT0));
    CHECK(*c.next_wakeup(kT0) == kT0 + 20);
    auto at10 = c.on_timer(kT0 + 10);
    CHECK_FALSE(std::any_of(at10.begin(), at10.end(), has<cmd::SaveResumeData>));
    CHECK_FALSE(std::any_of(at10.begin(), at10.end(), has<cmd::AddWebSeed>));
    c.progressed("KB1", kT0 + 15);
    auto at20 = c.on_timer(kT0 + 20);
    CHECK_FALSE(std::any_of(at20.begin(), at20.end(), has<cmd::AddWebSeed>));
    auto at35 = c.on_timer(kT0 + 35);
    CHECK(std::any_of(at35.begin(), at35.end(), has<cmd::AddWebSeed>));
    auto at40 = c.on_timer(kT0 + 40);
    CHECK_FALSE(std::any_of(at40.begin(), at40.end(), has<cmd::AddWebSeed>));
    auto at55 = c.on_timer(kT0 + 55);
    CHECK(std::any_of(at55.begin(), at55.end(), has<cmd::AddWebSeed>));
}

TEST_CASE("resume data is saved every resume_save_every_s only while the download moves",
          "[core]") {
    auto c = holding(State::downloading);
    c.joined_swarm("KB1", kT0);
    c.progressed("KB1", kT0 + 3);
    // Progress since the last save: the save is due 10 s after the last one, before the web seed.
    CHECK(*c.next_wakeup(kT0 + 3) == kT0 + 10);
    auto at10 = c.on_timer(kT0 + 10);
    CHECK(std::any_of(at10.begin(), at10.end(), has<cmd::SaveResumeData>));
    // No progress since that save: no further save is due, however long the agent waits...
    CHECK(*c.next_wakeup(kT0 + 10) == kT0 + 23);  // ...only the web seed, 20 s after progress
    auto at21 = c.on_timer(kT0 + 21);
    CHECK_FALSE(std::any_of(at21.begin(), at21.end(), has<cmd::SaveResumeData>));
    // Progress again: the next save is due 10 s after the previous one.
    c.progressed("KB1", kT0 + 22);
    CHECK(*c.next_wakeup(kT0 + 22) == kT0 + 20);
    auto at22 = c.on_timer(kT0 + 22);
    CHECK(std::any_of(at22.begin(), at22.end(), has<cmd::SaveResumeData>));
}

TEST_CASE("a release outside its window wakes the agent exactly when the window opens", "[core]") {
    Rollout r;
    // 10:00-11:00 UTC every day; kT0 is 05:20 UTC.
    r.windows.push_back({"office", kAllDays, 600, 660, "UTC"});
    auto c = holding(State::verified, r);
    auto waiting = c.evaluate("KB1", kT0);
    REQUIRE(waiting.size() == 1);
    REQUIRE(waiting[0].save);
    CHECK(waiting[0].save->state == State::waiting);
    CHECK(waiting[0].save->reason.rfind("outside maintenance window", 0) == 0);
    commit_all(c, waiting);
    const std::int64_t opens = kT0 - (kT0 % 86'400) + 10 * 3600;
    REQUIRE(c.next_wakeup(kT0) == opens);
    // Nothing is due a second earlier...
    auto early = c.on_timer(opens - 1);
    CHECK_FALSE(std::any_of(early.begin(), early.end(), has<cmd::RunInstall>));
    // ...and at the instant it opens the install starts.
    auto open = c.on_timer(opens);
    CHECK(std::any_of(open.begin(), open.end(), has<cmd::RunInstall>));
}

TEST_CASE("a deferral holds the install until it ends and wakes the agent then", "[core]") {
    auto c = holding(State::verified);
    auto held = c.set_deferral("KB1", kT0 + 600, kT0);
    REQUIRE(held.size() == 1);
    REQUIRE(held[0].save);
    CHECK(held[0].save->state == State::waiting);
    CHECK(held[0].save->reason.rfind("install deferred until ", 0) == 0);
    commit_all(c, held);
    CHECK(c.deferred_until("KB1") == kT0 + 600);
    CHECK(c.next_wakeup(kT0) == kT0 + 600);
    auto later = c.on_timer(kT0 + 600);
    CHECK(std::any_of(later.begin(), later.end(), has<cmd::RunInstall>));
}

TEST_CASE(
    "on resume an announced release without a torrent clears leftovers of an interrupted "
    "replace, and an install that outlived the agent is looked for, not counted",
    "[core]") {
    EndpointController c(config(), utc());
    ReleaseRecord announced;
    announced.id = "KB1";
    announced.state = State::announced;
    c.load(info(2), announced, std::nullopt);
    ReleaseRecord installing;
    installing.id = "KB2";
    installing.state = State::installing;
    auto i2 = info(1, "", true);
    i2.id = "KB2";
    c.load(i2, installing, std::nullopt);
    auto actions = c.resume(kT0);
    REQUIRE(actions.size() == 2);
    const Action& a = actions[0].id == "KB1" ? actions[0] : actions[1];
    const Action& b = actions[0].id == "KB1" ? actions[1] : actions[0];
    REQUIRE(has<cmd::RemoveReleaseFiles>(a));
    CHECK(index_of<cmd::RemoveReleaseFiles>(a) < index_of<cmd::StartDownload>(a));
    CHECK_FALSE(b.save);  // no attempt lost, nothing to persist
    CHECK(has<cmd::ProbeInstall>(b));
    CHECK_FALSE(has<cmd::RemoveReleaseFiles>(b));
    // The probe holds the release's worker slot until its observation comes back.
    commit_all(c, actions);
    InstallObservation running;
    running.supervisor_running = running.recorded = true;
    auto waiting = c.handle("KB2", ev::InstallObserved{running, "boot-1"}, kT0 + 1);
    REQUIRE(waiting.size() == 1);
    CHECK(has<cmd::AwaitInstall>(waiting[0]));
    commit_all(c, waiting);
    InstallObservation done;
    done.recorded = done.installer_started = done.finished = true;
    done.exit_code = 0;
    commit_all(c, c.handle("KB2", ev::InstallObserved{done, "boot-1"}, kT0 + 5));
    CHECK(c.record("KB2")->state == State::effective);
    CHECK(c.record("KB2")->attempts == 0);
}

TEST_CASE("a changed boot id makes a pending reboot effective", "[core]") {
    auto c = holding(State::installing);
    commit_all(c, c.set_boot_id("boot-1", kT0));
    auto installed = c.handle("KB1", ev::InstallFinished{3010, false, "", "boot-1"}, kT0);
    commit_all(c, installed);
    REQUIRE(c.record("KB1")->state == State::reboot_pending);
    auto same = c.set_boot_id("boot-1", kT0 + 1);
    commit_all(c, same);
    CHECK(c.record("KB1")->state == State::reboot_pending);
    auto rebooted = c.set_boot_id("boot-2", kT0 + 2);
    commit_all(c, rebooted);
    CHECK(c.record("KB1")->state == State::effective);
}

TEST_CASE("nothing to wait for means no wakeup at all", "[core]") {
    auto c = holding(State::effective);
    CHECK_FALSE(c.next_wakeup(kT0));
}

TEST_CASE("a reboot retry that is due outside the window waits for the window, not every second",
          "[core]") {
    Rollout r;
    // 10:00-11:00 UTC every day; kT0 is 05:20 UTC, so the reboot is not allowed now.
    r.windows.push_back({"office", kAllDays, 600, 660, "UTC"});
    EndpointController c(config(), utc());
    ReleaseRecord rec;
    rec.id = "KB1";
    rec.state = State::reboot_pending;
    rec.entered_at = kT0 - 3 * 3600;
    rec.boot_id_at_install = "boot-1";
    rec.reboot_requested_at = kT0 - 2 * 3600;  // asked two hours ago: the retry is long due
    auto i = info(1, "", true);
    i.rollout = r;
    c.load(std::move(i), rec, std::nullopt);
    commit_all(c, c.set_boot_id("boot-1", kT0));
    commit_all(c, c.evaluate("KB1", kT0));
    REQUIRE(c.record("KB1")->state == State::reboot_pending);
    const std::int64_t opens = kT0 - (kT0 % 86'400) + 10 * 3600;
    // A past instant would make the agent's one-shot fire again at once, every second.
    REQUIRE(c.next_wakeup(kT0));
    CHECK(*c.next_wakeup(kT0) == opens);
}

TEST_CASE("an emergency release deferred for ten years installs and reboots at its deadline",
          "[core]") {
    Rollout r;
    r.deadline = apply_deadline_policy(default_deadline_policy(), Severity::emergency, std::nullopt,
                                       std::nullopt, kT0, kT0 + 30 * 86'400)
                     .at;
    REQUIRE(r.deadline == kT0 + 86'400);
    // The only window is 10:00-11:00 UTC; the deadline (05:20 UTC) falls outside it.
    r.windows.push_back({"office", kAllDays, 600, 660, "UTC"});
    auto cfg = config();
    cfg.reboot_command = true;
    EndpointController c(cfg, utc());
    ReleaseRecord rec;
    rec.id = "KB1";
    rec.state = State::verified;
    rec.entered_at = kT0 - 100;
    auto i = info(1, "", true);
    i.rollout = r;
    c.load(std::move(i), rec, std::nullopt);
    commit_all(c, c.set_boot_id("boot-1", kT0));

    const std::int64_t asked = kT0 + 3650LL * 86'400;
    const std::int64_t until = clamp_deferral(r, asked);
    CHECK(until == *r.deadline);
    auto held = c.set_deferral("KB1", until, kT0);
    REQUIRE(held.size() == 1);
    REQUIRE(held[0].save);
    CHECK(held[0].save->state == State::waiting);
    commit_all(c, held);
    // Nothing before the deadline: not the window at 10:00 (deferred), not the next day's.
    CHECK(c.next_wakeup(kT0) == *r.deadline);
    auto early = c.on_timer(*r.deadline - 1);
    CHECK_FALSE(std::any_of(early.begin(), early.end(), has<cmd::RunInstall>));
    auto due = c.on_timer(*r.deadline);
    REQUIRE(std::any_of(due.begin(), due.end(), has<cmd::RunInstall>));
    commit_all(c, due);
    // The install asks for a reboot: past the deadline it is not held for the window either.
    auto installed =
        c.handle("KB1", ev::InstallFinished{3010, false, "", "boot-1"}, *r.deadline + 60);
    commit_all(c, installed);
    REQUIRE(c.record("KB1")->state == State::reboot_pending);
    bool reboot = std::any_of(installed.begin(), installed.end(), has<cmd::RunReboot>);
    if (!reboot) {
        auto next = c.evaluate("KB1", *r.deadline + 61);
        reboot = std::any_of(next.begin(), next.end(), has<cmd::RunReboot>);
    }
    CHECK(reboot);
}

TEST_CASE("a retry request re-arms a release that gave up, once per generation", "[core]") {
    auto c = holding(State::failed);
    ReleaseRecord gave_up = *c.record("KB1");
    gave_up.attempts = 5;
    gave_up.next_attempt_at = 0;  // no retry left
    gave_up.failed_phase = Phase::install;
    Action seed;
    seed.id = "KB1";
    seed.save = gave_up;
    c.committed(seed);
    // Nothing happens on its own.
    CHECK_FALSE(c.next_wakeup(kT0));

    FeedPolicy other;
    other.retries["KB1"] = {1, {std::string(32, 'b')}};  // another device
    auto ignored = c.set_feed_policy(other, kT0);
    REQUIRE(ignored.size() == 1);
    REQUIRE(ignored[0].save);
    CHECK(ignored[0].save->retry_generation == 1);  // seen, so never acted on later
    CHECK(ignored[0].save->attempts == 5);
    CHECK_FALSE(has<cmd::RunInstall>(ignored[0]));
    commit_all(c, ignored);

    FeedPolicy mine;
    mine.retries["KB1"] = {2, {}};  // every device
    auto rearmed = c.set_feed_policy(mine, kT0 + 10);
    REQUIRE(rearmed.size() == 1);
    REQUIRE(rearmed[0].save);
    CHECK(rearmed[0].save->retry_generation == 2);
    CHECK(rearmed[0].save->attempts == 0);
    CHECK(has<cmd::RunInstall>(rearmed[0]));  // retried now, from attempt 1
    CHECK(rearmed[0].save->state == State::installing);
    commit_all(c, rearmed);
    // It fails again: back to failed with a retry planned.
    auto failed = c.handle("KB1", ev::InstallFinished{1, false, "boom", ""}, kT0 + 20);
    commit_all(c, failed);
    REQUIRE(c.record("KB1")->state == State::failed);
    CHECK(c.record("KB1")->attempts == 1);
    CHECK(c.record("KB1")->next_attempt_at > kT0 + 20);
    // The same generation again (the next feed, or a restart with the stored feed): nothing.
    auto again = c.set_feed_policy(mine, kT0 + 30);
    REQUIRE(again.size() == 1);
    CHECK_FALSE(again[0].save);
    CHECK_FALSE(has<cmd::RunInstall>(again[0]));
}
