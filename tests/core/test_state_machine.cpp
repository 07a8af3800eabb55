// The endpoint state machine, driven with plain integer times (a fake clock): every transition,
// the happy paths, retries, crash/resume at every state, and what must be ignored.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/state_machine.hpp"

using namespace patchswarm::core;

namespace {

constexpr State kAllStates[] = {State::announced, State::downloading, State::verified,
                                State::waiting,   State::installing,  State::reboot_pending,
                                State::effective, State::failed,      State::rejected};

template <typename C>
std::size_t count(const Step& step) {
    return static_cast<std::size_t>(
        std::count_if(step.commands.begin(), step.commands.end(),
                      [](const Command& c) { return std::holds_alternative<C>(c); }));
}

template <typename C>
bool has(const Step& step) {
    return count<C>(step) > 0;
}

ReleaseRecord record_in(State state, std::int64_t entered_at = 100) {
    ReleaseRecord rec;
    rec.id = "MS08-067";
    rec.state = state;
    rec.entered_at = entered_at;
    return rec;
}

ev::Tick tick(std::string boot_id = "boot-1", bool allowed = true, std::string why = "") {
    return ev::Tick{std::move(boot_id), allowed, std::move(why), false, ""};
}

ev::InstallFinished install_exit(int code, std::string boot_id = "boot-1") {
    return ev::InstallFinished{code, false, "", std::move(boot_id)};
}

// Every kind of event, in the variations that matter, for the exhaustive tests.
std::vector<Event> all_events() {
    return {ev::Announced{},
            ev::DownloadStarted{},
            ev::DownloadComplete{},
            ev::PayloadVerified{true, ""},
            ev::PayloadVerified{false, "hash mismatch"},
            ev::InstallFinished{0, false, "", "boot-1"},
            ev::InstallFinished{1, false, "boom", "boot-1"},
            ev::InstallFinished{3010, false, "", "boot-1"},
            ev::InstallFinished{143, true, "", "boot-1"},
            ev::VerifyFinished{true, ""},
            ev::VerifyFinished{false, "still vulnerable"},
            ev::Tick{"boot-1", true, "", false, ""},
            ev::Tick{"boot-2", true, "", false, ""},
            ev::Tick{"boot-2", false, "outside window", false, ""},
            ev::Tick{"", true, "", false, ""},
            ev::Resumed{},
            ev::InstallObserved{{false, true, false, true, false, true, 0, false, "", ""}, "b"},
            ev::InstallObserved{{true, true, false, true, true, false, -1, false, "", ""}, "b"},
            ev::InstallObserved{{false, true, false, true, false, false, -1, false, "", ""}, "b"},
            ev::InstallObserved{{}, "b"}};
}

// The records the machine can hold, including the sub-states that matter (verify running,
// retry pending, retries exhausted).
std::vector<ReleaseRecord> interesting_records() {
    std::vector<ReleaseRecord> recs;
    for (const State s : kAllStates) recs.push_back(record_in(s));
    auto verifying = record_in(State::installing);
    verifying.verify_started_at = 150;
    recs.push_back(verifying);
    auto pending = record_in(State::reboot_pending);
    pending.boot_id_at_install = "boot-1";
    recs.push_back(pending);
    auto pending_verify = pending;
    pending_verify.verify_started_at = 150;
    recs.push_back(pending_verify);
    for (const Phase phase : {Phase::download, Phase::install, Phase::verify}) {
        auto failed = record_in(State::failed);
        failed.failed_phase = phase;
        failed.attempts = 1;
        failed.next_attempt_at = 130;
        failed.reason = "earlier failure";
        recs.push_back(failed);
        failed.next_attempt_at = 0;  // gave up
        recs.push_back(failed);
    }
    auto waiting = record_in(State::waiting);
    waiting.reason = "outside window";
    recs.push_back(waiting);
    return recs;
}

}  // namespace

TEST_CASE("state and phase names round-trip and unknown names are refused", "[core]") {
    for (const State s : kAllStates) {
        CHECK(parse_state(to_string(s)) == s);
    }
    CHECK(to_string(State::reboot_pending) == "reboot_pending");
    CHECK(to_string(State::downloading) == "downloading");
    for (const Phase p : {Phase::download, Phase::install, Phase::verify}) {
        CHECK(parse_phase(to_string(p)) == p);
    }
    CHECK_FALSE(parse_state("Effective").has_value());
    CHECK_FALSE(parse_state("").has_value());
    CHECK_FALSE(parse_phase("reboot").has_value());
}

TEST_CASE("backoff doubles from the base and stops at the cap without overflowing", "[core]") {
    const RetryPolicy retry{};  // 30 s base, 3600 s cap
    CHECK(backoff_seconds(1, retry) == 30);
    CHECK(backoff_seconds(2, retry) == 60);
    CHECK(backoff_seconds(3, retry) == 120);
    CHECK(backoff_seconds(4, retry) == 240);
    CHECK(backoff_seconds(7, retry) == 1920);
    CHECK(backoff_seconds(8, retry) == 3600);
    CHECK(backoff_seconds(100, retry) == 3600);
    CHECK(backoff_seconds(UINT32_MAX, retry) == 3600);
    CHECK(backoff_seconds(0, retry) == 30);
    const RetryPolicy huge{5, 1, INT64_MAX};
    CHECK(backoff_seconds(63, huge) == (std::int64_t{1} << 62));
    CHECK(backoff_seconds(UINT32_MAX, huge) == INT64_MAX);
}

TEST_CASE("announced starts the download and reports, stamping a fresh record", "[core]") {
    ReleaseRecord fresh;
    fresh.id = "r";
    auto step = on_event(fresh, {}, ev::Announced{}, 500);
    CHECK(step.record.state == State::announced);
    CHECK(step.record.entered_at == 500);
    CHECK(step.changed);
    CHECK(count<cmd::StartDownload>(step) == 1);
    CHECK(count<cmd::SendReport>(step) == 1);

    auto again = on_event(step.record, {}, ev::Announced{}, 900);
    CHECK_FALSE(again.changed);
    CHECK(again.record.entered_at == 500);
    CHECK(has<cmd::StartDownload>(again));

    auto late = on_event(record_in(State::downloading), {}, ev::Announced{}, 900);
    CHECK_FALSE(late.changed);
    CHECK(late.commands.empty());
}

TEST_CASE("happy path without reboot or verify ends effective", "[core]") {
    const ReleaseFacts facts{false, true, false};
    auto rec = record_in(State::announced, 10);

    auto s = on_event(rec, facts, ev::DownloadStarted{}, 20);
    REQUIRE(s.record.state == State::downloading);
    CHECK(s.record.entered_at == 20);
    CHECK(s.changed);
    CHECK(s.commands.size() == 1);
    CHECK(has<cmd::SendReport>(s));

    s = on_event(s.record, facts, ev::DownloadComplete{}, 30);
    CHECK(s.record.state == State::downloading);
    CHECK_FALSE(s.changed);
    CHECK(s.commands.size() == 1);
    CHECK(has<cmd::VerifyPayload>(s));

    s = on_event(s.record, facts, ev::PayloadVerified{true, ""}, 40);
    REQUIRE(s.record.state == State::verified);
    CHECK(s.record.entered_at == 40);
    CHECK(has<cmd::SendReport>(s));

    s = on_event(s.record, facts, tick(), 50);
    REQUIRE(s.record.state == State::installing);
    CHECK(s.record.entered_at == 50);
    CHECK(count<cmd::RunInstall>(s) == 1);
    CHECK(has<cmd::SendReport>(s));

    s = on_event(s.record, facts, install_exit(0), 60);
    REQUIRE(s.record.state == State::effective);
    CHECK(s.record.entered_at == 60);
    CHECK(s.record.last_exit_code == 0);
    CHECK(s.record.attempts == 0);
    CHECK(s.record.reason.empty());
    CHECK(s.commands.size() == 1);
    CHECK(has<cmd::SendReport>(s));
}

TEST_CASE("a required reboot is pending until the boot id changes", "[core]") {
    const ReleaseFacts facts{true, true, false};
    auto s = on_event(record_in(State::installing), facts, install_exit(0, "boot-A"), 200);
    REQUIRE(s.record.state == State::reboot_pending);
    CHECK(s.record.boot_id_at_install == "boot-A");
    CHECK(s.record.entered_at == 200);
    CHECK(has<cmd::SendReport>(s));

    SECTION("the same boot id is not a reboot") {
        auto same = on_event(s.record, facts, tick("boot-A"), 300);
        CHECK_FALSE(same.changed);
        CHECK(same.commands.empty());
    }
    SECTION("an unknown current boot id is not a reboot") {
        auto unknown = on_event(s.record, facts, tick(""), 300);
        CHECK_FALSE(unknown.changed);
        CHECK(unknown.commands.empty());
    }
    SECTION("a new boot id makes it effective") {
        auto after = on_event(s.record, facts, tick("boot-B"), 400);
        CHECK(after.record.state == State::effective);
        CHECK(after.record.entered_at == 400);
        CHECK(has<cmd::SendReport>(after));
        CHECK_FALSE(has<cmd::RunVerify>(after));
    }
    SECTION("the policy verdict does not hold back reboot detection") {
        auto after = on_event(s.record, facts, tick("boot-B", false, "outside window"), 400);
        CHECK(after.record.state == State::effective);
    }
}

TEST_CASE("an install that recorded no boot id never counts as rebooted", "[core]") {
    const ReleaseFacts facts{true, true, false};
    auto s = on_event(record_in(State::installing), facts, install_exit(0, ""), 200);
    REQUIRE(s.record.state == State::reboot_pending);
    auto after = on_event(s.record, facts, tick("boot-B"), 400);
    CHECK(after.record.state == State::reboot_pending);
    CHECK_FALSE(after.changed);
}

TEST_CASE("after a reboot the verify command decides", "[core]") {
    const ReleaseFacts facts{true, true, true};
    auto s = on_event(record_in(State::installing), facts, install_exit(0, "boot-A"), 200);
    REQUIRE(s.record.state == State::reboot_pending);
    CHECK_FALSE(has<cmd::RunVerify>(s));  // not before the reboot

    s = on_event(s.record, facts, tick("boot-B"), 400);
    CHECK(s.record.state == State::reboot_pending);
    CHECK(s.record.verify_started_at == 400);
    CHECK(s.record.entered_at == 200);
    CHECK(s.changed);
    CHECK(count<cmd::RunVerify>(s) == 1);
    CHECK_FALSE(has<cmd::SendReport>(s));

    // A verify already running is not started twice.
    auto again = on_event(s.record, facts, tick("boot-B"), 410);
    CHECK_FALSE(again.changed);
    CHECK(again.commands.empty());

    SECTION("pass") {
        auto done = on_event(s.record, facts, ev::VerifyFinished{true, ""}, 420);
        CHECK(done.record.state == State::effective);
        CHECK(done.record.verify_started_at == 0);
        CHECK(done.record.entered_at == 420);
        CHECK(has<cmd::SendReport>(done));
    }
    SECTION("fail") {
        auto done = on_event(s.record, facts, ev::VerifyFinished{false, "KB missing"}, 420);
        CHECK(done.record.state == State::failed);
        CHECK(done.record.failed_phase == Phase::verify);
        CHECK(done.record.attempts == 1);
        CHECK(done.record.next_attempt_at == 450);
        CHECK(done.record.verify_started_at == 0);
        CHECK(done.record.reason.find("KB missing") != std::string::npos);
    }
}

TEST_CASE("without a reboot the verify command runs right after the install", "[core]") {
    const ReleaseFacts facts{false, true, true};
    auto s = on_event(record_in(State::installing, 150), facts, install_exit(0), 200);
    CHECK(s.record.state == State::installing);
    CHECK(s.record.entered_at == 150);
    CHECK(s.record.verify_started_at == 200);
    CHECK(s.changed);
    CHECK(count<cmd::RunVerify>(s) == 1);
    CHECK_FALSE(has<cmd::SendReport>(s));

    // The install's own completion can only be counted once.
    auto dup = on_event(s.record, facts, install_exit(0), 205);
    CHECK_FALSE(dup.changed);
    CHECK(dup.commands.empty());

    SECTION("pass") {
        auto done = on_event(s.record, facts, ev::VerifyFinished{true, ""}, 230);
        CHECK(done.record.state == State::effective);
        CHECK(done.record.verify_started_at == 0);
    }
    SECTION("fail, then a retry re-installs once the backoff has passed") {
        auto done = on_event(s.record, facts, ev::VerifyFinished{false, "exit 1"}, 230);
        REQUIRE(done.record.state == State::failed);
        CHECK(done.record.failed_phase == Phase::verify);
        CHECK(done.record.next_attempt_at == 260);
        CHECK(done.record.reason == "verify failed: exit 1");

        auto early = on_event(done.record, facts, tick(), 259);
        CHECK_FALSE(early.changed);
        auto retry = on_event(done.record, facts, tick(), 260);
        CHECK(retry.record.state == State::installing);
        CHECK(retry.record.next_attempt_at == 0);
        CHECK(retry.record.reason.empty());
        CHECK(retry.record.attempts == 1);
        CHECK(count<cmd::RunInstall>(retry) == 1);
    }
}

TEST_CASE("a verify result with no verify running is ignored", "[core]") {
    const ReleaseFacts facts{false, true, true};
    for (const State s : {State::installing, State::reboot_pending, State::verified}) {
        auto step = on_event(record_in(s), facts, ev::VerifyFinished{true, ""}, 300);
        CHECK_FALSE(step.changed);
        CHECK(step.commands.empty());
    }
}

TEST_CASE("exit 1641 means the installer is rebooting: reboot_pending, no second reboot",
          "[core]") {
    const ReleaseFacts facts{false, true, false};
    auto s = on_event(record_in(State::installing), facts, install_exit(1641, "boot-A"), 200);
    CHECK(s.record.state == State::reboot_pending);
    CHECK(s.record.last_exit_code == 1641);
    CHECK(s.record.reason.find("1641") != std::string::npos);
    // Still the same boot a minute later, reboots allowed: the agent does not start another.
    auto t = on_event(s.record, facts, tick("boot-A", true), 260);
    CHECK_FALSE(has<cmd::RunReboot>(t));
    // The new boot makes it effective.
    auto u = on_event(t.record, facts, tick("boot-B", true), 300);
    CHECK(u.record.state == State::effective);
}

TEST_CASE("exit 3010 and its 8-bit form 194 mean success with a reboot", "[core]") {
    const int code = GENERATE(3010, 194, 1641);
    SECTION("reboot_if_3010 set") {
        const ReleaseFacts facts{false, true, false};
        auto s = on_event(record_in(State::installing), facts, install_exit(code, "boot-A"), 200);
        CHECK(s.record.state == State::reboot_pending);
        CHECK(s.record.last_exit_code == code);
        CHECK(s.record.boot_id_at_install == "boot-A");
    }
    SECTION("reboot_if_3010 cleared: plain success") {
        const ReleaseFacts facts{false, false, false};
        auto s = on_event(record_in(State::installing), facts, install_exit(code), 200);
        CHECK(s.record.state == State::effective);
        CHECK(s.record.last_exit_code == code);
    }
    SECTION("reboot_if_3010 cleared but the manifest requires a reboot anyway") {
        const ReleaseFacts facts{true, false, false};
        auto s = on_event(record_in(State::installing), facts, install_exit(code), 200);
        CHECK(s.record.state == State::reboot_pending);
    }
}

TEST_CASE("a failing or timed-out install fails with the exit code and output", "[core]") {
    const ReleaseFacts facts{};
    SECTION("non-zero exit") {
        ev::InstallFinished e{2, false, "E: disk full\n", "boot-1"};
        auto s = on_event(record_in(State::installing), facts, e, 200);
        CHECK(s.record.state == State::failed);
        CHECK(s.record.failed_phase == Phase::install);
        CHECK(s.record.attempts == 1);
        CHECK(s.record.next_attempt_at == 230);
        CHECK(s.record.last_exit_code == 2);
        CHECK(s.record.entered_at == 200);
        CHECK(s.record.reason == "install failed with exit code 2: E: disk full\n");
        CHECK(has<cmd::SendReport>(s));
        CHECK_FALSE(has<cmd::RunInstall>(s));
    }
    SECTION("timeout, even with a success exit code") {
        ev::InstallFinished e{0, true, "", "boot-1"};
        auto s = on_event(record_in(State::installing), facts, e, 200);
        CHECK(s.record.state == State::failed);
        CHECK(s.record.reason.find("timed out") != std::string::npos);
    }
    SECTION("exit codes close to the success codes are failures") {
        for (const int code : {1, 3011, 195, -1, 256}) {
            auto s = on_event(record_in(State::installing), facts, install_exit(code), 200);
            CHECK(s.record.state == State::failed);
        }
    }
    SECTION("a long output keeps only its tail, as valid UTF-8") {
        std::string output(5000, 'x');
        output += "\xff\xfe binary";
        output += "\xc3\xa9nd";  // é
        // A 2-byte character cut in half by the 1000-byte tail.
        output[output.size() - 1001] = '\xc3';
        output[output.size() - 1000] = '\xa9';
        ev::InstallFinished e{1, false, output, "boot-1"};
        auto s = on_event(record_in(State::installing), facts, e, 200);
        const auto& reason = s.record.reason;
        CHECK(reason.size() < 1100);
        CHECK(reason.starts_with("install failed with exit code 1: ...xxx"));
        CHECK(reason.ends_with("?? binary\xc3\xa9nd"));
        CHECK(reason.find("\xff") == std::string::npos);
    }
}

TEST_CASE("an install that may not run yet waits, keeping its reason current", "[core]") {
    const ReleaseFacts facts{};
    auto s = on_event(record_in(State::verified), facts, tick("b", false, "outside window"), 200);
    REQUIRE(s.record.state == State::waiting);
    CHECK(s.record.reason == "outside window");
    CHECK(s.record.entered_at == 200);
    CHECK(has<cmd::SendReport>(s));
    CHECK_FALSE(has<cmd::RunInstall>(s));

    auto same = on_event(s.record, facts, tick("b", false, "outside window"), 300);
    CHECK_FALSE(same.changed);
    CHECK(same.commands.empty());

    auto other = on_event(s.record, facts, tick("b", false, "deferred by user"), 400);
    CHECK(other.changed);
    CHECK(other.record.state == State::waiting);
    CHECK(other.record.reason == "deferred by user");
    CHECK(other.record.entered_at == 200);  // still the same state
    CHECK(has<cmd::SendReport>(other));

    auto go = on_event(other.record, facts, tick("b", true), 500);
    CHECK(go.record.state == State::installing);
    CHECK(go.record.reason.empty());
    CHECK(go.record.entered_at == 500);
    CHECK(count<cmd::RunInstall>(go) == 1);
}

TEST_CASE("download failures retry with exact backoff and give up after max_attempts", "[core]") {
    const ReleaseFacts facts{};
    const RetryPolicy retry{};  // 5 attempts, 30 s base
    auto rec = record_in(State::downloading, 0);
    std::int64_t now = 1000;
    const std::int64_t expected_delay[] = {30, 60, 120, 240};

    for (std::uint32_t attempt = 1; attempt <= 5; ++attempt) {
        auto failed = on_event(rec, facts, ev::PayloadVerified{false, "hash mismatch"}, now, retry);
        REQUIRE(failed.record.state == State::failed);
        CHECK(failed.record.failed_phase == Phase::download);
        CHECK(failed.record.attempts == attempt);
        CHECK(failed.record.reason == "payload verification failed: hash mismatch");
        CHECK(failed.record.entered_at == now);
        if (attempt == 5) {
            CHECK(failed.record.next_attempt_at == 0);  // given up
            for (const std::int64_t later : {now + 1, now + 100000}) {
                auto idle = on_event(failed.record, facts, tick(), later, retry);
                CHECK_FALSE(idle.changed);
                CHECK(idle.commands.empty());
            }
            break;
        }
        const auto due = now + expected_delay[attempt - 1];
        CHECK(failed.record.next_attempt_at == due);

        auto early = on_event(failed.record, facts, tick(), due - 1, retry);
        CHECK_FALSE(early.changed);
        CHECK(early.commands.empty());

        auto again = on_event(failed.record, facts, tick(), due, retry);
        REQUIRE(again.record.state == State::downloading);
        CHECK(again.record.entered_at == due);
        CHECK(again.record.attempts == attempt);
        CHECK(again.record.next_attempt_at == 0);
        CHECK(again.record.reason.empty());
        CHECK(count<cmd::Redownload>(again) == 1);
        CHECK(has<cmd::SendReport>(again));

        rec = again.record;
        now = due + 5;
    }
}

TEST_CASE("attempts count failures across phases towards one limit", "[core]") {
    const ReleaseFacts facts{};
    const RetryPolicy retry{2, 10, 100};
    auto s =
        on_event(record_in(State::downloading), facts, ev::PayloadVerified{false, ""}, 100, retry);
    CHECK(s.record.next_attempt_at == 110);
    CHECK(s.record.reason == "payload verification failed");
    s = on_event(s.record, facts, tick(), 110, retry);
    s = on_event(s.record, facts, ev::PayloadVerified{true, ""}, 120, retry);
    s = on_event(s.record, facts, tick(), 130, retry);
    REQUIRE(s.record.state == State::installing);
    s = on_event(s.record, facts, install_exit(1), 140, retry);
    CHECK(s.record.state == State::failed);
    CHECK(s.record.attempts == 2);
    CHECK(s.record.next_attempt_at == 0);
}

TEST_CASE("a failed install retries only when the policy allows an install", "[core]") {
    const ReleaseFacts facts{};
    auto s = on_event(record_in(State::installing), facts, install_exit(1), 100);
    REQUIRE(s.record.next_attempt_at == 130);

    auto blocked = on_event(s.record, facts, tick("b", false, "rollout halted"), 130);
    CHECK(blocked.record.state == State::waiting);
    CHECK(blocked.record.reason == "rollout halted");
    CHECK(blocked.record.attempts == 1);
    CHECK(blocked.record.next_attempt_at == 0);
    CHECK_FALSE(has<cmd::RunInstall>(blocked));

    auto allowed = on_event(s.record, facts, tick(), 130);
    CHECK(allowed.record.state == State::installing);
    CHECK(count<cmd::RunInstall>(allowed) == 1);
}

TEST_CASE("a failed verify is retried as an install, also subject to the policy", "[core]") {
    const ReleaseFacts facts{false, true, true};
    auto rec = record_in(State::failed);
    rec.failed_phase = Phase::verify;
    rec.attempts = 1;
    rec.next_attempt_at = 130;
    auto blocked = on_event(rec, facts, tick("b", false, "deferred"), 130);
    CHECK(blocked.record.state == State::waiting);
    CHECK_FALSE(has<cmd::RunInstall>(blocked));
    auto allowed = on_event(rec, facts, tick(), 130);
    CHECK(allowed.record.state == State::installing);
    CHECK(count<cmd::RunInstall>(allowed) == 1);
}

TEST_CASE("a download can be restarted from a failed download, not from other failures", "[core]") {
    auto rec = record_in(State::failed);
    rec.failed_phase = Phase::download;
    rec.next_attempt_at = 500;
    rec.reason = "hash mismatch";
    auto s = on_event(rec, {}, ev::DownloadStarted{}, 200);
    CHECK(s.record.state == State::downloading);
    CHECK(s.record.reason.empty());
    CHECK(s.record.next_attempt_at == 0);

    rec.failed_phase = Phase::install;
    auto ignored = on_event(rec, {}, ev::DownloadStarted{}, 200);
    CHECK_FALSE(ignored.changed);
    CHECK(ignored.commands.empty());
}

TEST_CASE("resuming after a crash in each state does the documented thing", "[core]") {
    const ReleaseFacts facts{true, true, true};
    const std::int64_t now = 5000;
    for (const auto& rec : interesting_records()) {
        INFO("state " << to_string(rec.state) << " verify_started_at " << rec.verify_started_at);
        const auto s = on_event(rec, facts, ev::Resumed{}, now);
        // An install that may have run is never silently run again.
        CHECK_FALSE(has<cmd::RunInstall>(s));
        CHECK_FALSE(has<cmd::Redownload>(s));
        switch (rec.state) {
            case State::announced:
            case State::downloading:
                CHECK_FALSE(s.changed);
                CHECK(s.commands.size() == 1);
                CHECK(has<cmd::StartDownload>(s));
                break;
            case State::installing:
                if (rec.verify_started_at == 0) {
                    // The install outlived the agent under its supervisor: look before acting,
                    // and an interrupted agent costs no attempt.
                    CHECK_FALSE(s.changed);
                    CHECK(s.commands.size() == 1);
                    CHECK(has<cmd::ProbeInstall>(s));
                } else {
                    CHECK(s.record.state == State::installing);
                    CHECK(s.record.verify_started_at == now);
                    CHECK(s.record.entered_at == rec.entered_at);
                    CHECK(s.commands.size() == 1);
                    CHECK(has<cmd::RunVerify>(s));
                }
                break;
            case State::reboot_pending:
                CHECK(s.record.state == State::reboot_pending);
                CHECK(s.record.verify_started_at == 0);
                CHECK(s.changed == (rec.verify_started_at != 0));
                CHECK(s.commands.empty());
                break;
            default:
                CHECK_FALSE(s.changed);
                CHECK(s.commands.empty());
        }
    }
}

TEST_CASE("a verify cut short by a crash after a reboot is re-run by the next tick", "[core]") {
    const ReleaseFacts facts{true, true, true};
    auto rec = record_in(State::reboot_pending);
    rec.boot_id_at_install = "boot-A";
    rec.verify_started_at = 400;
    auto resumed = on_event(rec, facts, ev::Resumed{}, 900);
    auto s = on_event(resumed.record, facts, tick("boot-C"), 910);
    CHECK(s.record.verify_started_at == 910);
    CHECK(count<cmd::RunVerify>(s) == 1);
}

TEST_CASE("a crash at every step of a release never re-runs an install behind our back", "[core]") {
    // Walk the full path; at every persisted record, pretend the agent died before acting on the
    // commands, restart it, and play it forward with ticks. RunInstall may only come from a
    // tick (the policy's decision), never from the resume itself.
    const ReleaseFacts facts{true, true, true};
    const std::vector<Event> path = {ev::Announced{},        ev::DownloadStarted{},
                                     ev::DownloadComplete{}, ev::PayloadVerified{true, ""},
                                     tick("boot-A"),         install_exit(0, "boot-A"),
                                     tick("boot-B"),         ev::VerifyFinished{true, ""}};
    ReleaseRecord rec = record_in(State::announced, 1);
    std::int64_t now = 10;
    for (const auto& event : path) {
        auto step = on_event(rec, facts, event, now);
        rec = step.record;
        now += 10;
        const auto resumed = on_event(rec, facts, ev::Resumed{}, now);
        INFO("crash in " << to_string(rec.state));
        CHECK_FALSE(has<cmd::RunInstall>(resumed));
        if (rec.state == State::installing && rec.verify_started_at == 0) {
            // The install's supervisor outlived the agent: looked for, not counted as failed.
            CHECK_FALSE(resumed.changed);
            CHECK(has<cmd::ProbeInstall>(resumed));
            CHECK(resumed.record.attempts == rec.attempts);
        }
    }
    CHECK(rec.state == State::effective);
    CHECK(rec.attempts == 0);
}

TEST_CASE("terminal states ignore every event", "[core]") {
    for (const State terminal : {State::effective, State::rejected}) {
        auto rec = record_in(terminal);
        rec.reason = terminal == State::rejected ? "bad signature" : "";
        rec.boot_id_at_install = "boot-1";
        for (const ReleaseFacts facts :
             {ReleaseFacts{false, true, false}, ReleaseFacts{true, true, true}}) {
            for (const auto& event : all_events()) {
                const auto s = on_event(rec, facts, event, 99999);
                INFO(to_string(terminal) << " event #" << event.index());
                CHECK_FALSE(s.changed);
                CHECK(s.commands.empty());
                CHECK(s.record == rec);
            }
        }
    }
}

TEST_CASE("every state and event keeps the step invariants", "[core]") {
    const std::int64_t now = 7777;
    for (const ReleaseFacts facts :
         {ReleaseFacts{false, true, false}, ReleaseFacts{true, true, true},
          ReleaseFacts{false, false, true}}) {
        for (const auto& rec : interesting_records()) {
            for (const auto& event : all_events()) {
                const auto s = on_event(rec, facts, event, now);
                INFO("state " << to_string(rec.state) << " event #" << event.index());
                CHECK(s.changed == (s.record != rec));
                CHECK(s.record.id == rec.id);
                const bool state_changed = s.record.state != rec.state;
                if (state_changed) {
                    CHECK(s.record.entered_at == now);
                    CHECK(count<cmd::SendReport>(s) == 1);
                } else if (rec.state != State::announced) {
                    CHECK(s.record.entered_at == rec.entered_at);
                }
                CHECK(count<cmd::SendReport>(s) <= 1);
                if (s.record.state != State::failed && s.record.state != State::waiting &&
                    s.record.state != State::rejected) {
                    CHECK(s.record.reason.empty());
                }
                if (has<cmd::RunInstall>(s)) {
                    CHECK(s.record.state == State::installing);
                    // A policy tick starts an install; the only other way is an observation
                    // proving the last one never started (no second install, no lost attempt).
                    if (const auto* seen = std::get_if<ev::InstallObserved>(&event)) {
                        CHECK_FALSE(state_changed);
                        CHECK(decide_install_recovery(seen->seen, facts.rerun_safe) ==
                              InstallRecovery::start);
                    } else {
                        CHECK(state_changed);
                        CHECK(std::holds_alternative<ev::Tick>(event));
                    }
                }
                if (has<cmd::RunVerify>(s)) CHECK(s.record.verify_started_at == now);
                if (s.record.state == State::failed && state_changed) {
                    CHECK(s.record.attempts == rec.attempts + 1);
                }
            }
        }
    }
}

TEST_CASE("reboot_pending asks for a reboot once when allowed, and says why when not", "[core]") {
    const ReleaseFacts facts{true, true, false};
    auto s = on_event(record_in(State::installing), facts, install_exit(0, "boot-A"), 200);
    REQUIRE(s.record.state == State::reboot_pending);
    CHECK_FALSE(has<cmd::RunReboot>(s));

    SECTION("held back by policy: the reason is recorded and reported, no reboot") {
        ev::Tick t = tick("boot-A");
        t.reboot_wait_reason = "reboot outside maintenance window";
        auto held = on_event(s.record, facts, t, 300);
        CHECK(held.record.state == State::reboot_pending);
        CHECK(held.record.reason == "reboot outside maintenance window");
        CHECK(held.record.entered_at == 200);  // still pending since the install
        CHECK_FALSE(has<cmd::RunReboot>(held));
        CHECK(has<cmd::SendReport>(held));
        // The same reason again changes nothing and sends nothing.
        auto again = on_event(held.record, facts, t, 301);
        CHECK_FALSE(again.changed);
        CHECK(again.commands.empty());
    }
    SECTION("allowed: one reboot command, not repeated on the next ticks") {
        ev::Tick t = tick("boot-A");
        t.reboot_allowed = true;
        auto asked = on_event(s.record, facts, t, 300);
        CHECK(count<cmd::RunReboot>(asked) == 1);
        CHECK(asked.record.reboot_requested_at == 300);
        CHECK(asked.changed);  // persisted before the command runs
        auto next = on_event(asked.record, facts, t, 301);
        CHECK_FALSE(has<cmd::RunReboot>(next));
        // A reboot that never happened is asked for again after kRebootRetryS.
        auto later = on_event(asked.record, facts, t, 300 + kRebootRetryS);
        CHECK(count<cmd::RunReboot>(later) == 1);
        // Once the boot id changed, the release is effective and no reboot is asked for.
        auto rebooted = on_event(asked.record, facts, tick("boot-B"), 400);
        CHECK(rebooted.record.state == State::effective);
        CHECK_FALSE(has<cmd::RunReboot>(rebooted));
    }
}

namespace {

InstallObservation finished_with(int code) {
    InstallObservation o;
    o.recorded = o.installer_started = o.finished = true;
    o.exit_code = code;
    o.output_tail = "done";
    return o;
}

InstallObservation died() {
    InstallObservation o;
    o.recorded = o.installer_started = true;
    o.detail = "installer pid 4242";
    return o;
}

}  // namespace

TEST_CASE(
    "install recovery: adopt a result, wait for a live one, start one that never ran, "
    "re-run a dead one only when the release is idempotent",
    "[core]") {
    struct Row {
        const char* what;
        InstallObservation seen;
        bool rerun_safe;
        InstallRecovery want;
    };
    InstallObservation running;
    running.supervisor_running = running.recorded = running.installer_started = true;
    running.installer_running = true;
    InstallObservation supervisor_only = running;
    supervisor_only.installer_running = false;
    InstallObservation orphan = running;  // supervisor killed alone, installer still going
    orphan.supervisor_running = false;
    InstallObservation launching;
    launching.recorded = launching.launching = true;
    InstallObservation recorded_only;  // supervisor died before it launched anything
    recorded_only.recorded = true;
    InstallObservation finished_locked = finished_with(0);
    finished_locked.supervisor_running = true;  // result written, lock not yet released
    const Row rows[] = {
        {"finished", finished_with(0), false, InstallRecovery::adopt},
        {"finished with a failure", finished_with(1), true, InstallRecovery::adopt},
        {"finished, supervisor exiting", finished_locked, false, InstallRecovery::adopt},
        {"supervisor and installer running", running, false, InstallRecovery::wait},
        {"supervisor running", supervisor_only, true, InstallRecovery::wait},
        {"orphaned installer alive", orphan, false, InstallRecovery::wait},
        {"no trace at all", InstallObservation{}, false, InstallRecovery::start},
        {"supervisor recorded, installer never launched", recorded_only, false,
         InstallRecovery::start},
        {"died while launching, idempotent", launching, true, InstallRecovery::rerun},
        {"died while launching", launching, false, InstallRecovery::hold},
        {"installer died, idempotent", died(), true, InstallRecovery::rerun},
        {"installer died", died(), false, InstallRecovery::hold},
    };
    for (const auto& row : rows) {
        INFO(row.what);
        CHECK(decide_install_recovery(row.seen, row.rerun_safe) == row.want);
    }
}

TEST_CASE(
    "an install found finished after a restart is adopted without a second run or a "
    "lost attempt",
    "[core]") {
    ReleaseFacts facts;
    auto rec = record_in(State::installing);
    rec.attempts = 2;
    const auto resumed = on_event(rec, facts, ev::Resumed{}, 500);
    REQUIRE(has<cmd::ProbeInstall>(resumed));
    const auto ok =
        on_event(resumed.record, facts, ev::InstallObserved{finished_with(0), "b1"}, 510);
    CHECK(ok.record.state == State::effective);
    CHECK(ok.record.attempts == 2);
    CHECK_FALSE(has<cmd::RunInstall>(ok));
    const auto bad =
        on_event(resumed.record, facts, ev::InstallObserved{finished_with(7), "b1"}, 510);
    CHECK(bad.record.state == State::failed);
    CHECK(bad.record.attempts == 3);  // the installer's own failure counts, as always
    CHECK(bad.record.reason.find("exit code 7") != std::string::npos);
    facts.reboot_required = true;
    const auto reboot =
        on_event(resumed.record, facts, ev::InstallObserved{finished_with(0), "b1"}, 510);
    CHECK(reboot.record.state == State::reboot_pending);
    CHECK(reboot.record.boot_id_at_install == "b1");
}

TEST_CASE(
    "a running install is waited for, one that never ran starts without costing an "
    "attempt",
    "[core]") {
    const ReleaseFacts facts;
    const auto rec = record_in(State::installing);
    InstallObservation running;
    running.supervisor_running = running.recorded = true;
    const auto wait = on_event(rec, facts, ev::InstallObserved{running, "b"}, 500);
    CHECK_FALSE(wait.changed);
    CHECK(wait.commands.size() == 1);
    CHECK(has<cmd::AwaitInstall>(wait));
    const auto start = on_event(rec, facts, ev::InstallObserved{InstallObservation{}, "b"}, 500);
    CHECK_FALSE(start.changed);
    CHECK(start.commands.size() == 1);
    CHECK(has<cmd::RunInstall>(start));
}

TEST_CASE(
    "a dead installer re-runs with a counted attempt only for an idempotent release, "
    "otherwise it waits for an operator",
    "[core]") {
    auto rec = record_in(State::installing);
    rec.attempts = 1;
    ReleaseFacts facts;
    const auto hold = on_event(rec, facts, ev::InstallObserved{died(), "b"}, 500);
    CHECK(hold.record.state == State::failed);
    CHECK(hold.record.failed_phase == Phase::install);
    CHECK(hold.record.attempts == 2);
    CHECK(hold.record.next_attempt_at == 0);
    CHECK(hold.record.reason.find("installer died") != std::string::npos);
    CHECK(hold.record.reason.find("not marked idempotent") != std::string::npos);
    CHECK(hold.record.reason.find("installer pid 4242") != std::string::npos);
    CHECK(has<cmd::SendReport>(hold));
    // No tick ever starts it again.
    const auto later = on_event(hold.record, facts, tick(), 500 + 86400);
    CHECK_FALSE(has<cmd::RunInstall>(later));

    facts.rerun_safe = true;
    const auto rerun = on_event(rec, facts, ev::InstallObserved{died(), "b"}, 500);
    CHECK(rerun.record.state == State::failed);
    CHECK(rerun.record.attempts == 2);
    CHECK(rerun.record.next_attempt_at == 500 + backoff_seconds(2, RetryPolicy{}));
    CHECK(rerun.record.reason.find("marked idempotent, running it again") != std::string::npos);
    const auto retried = on_event(rerun.record, facts, tick(), rerun.record.next_attempt_at);
    CHECK(retried.record.state == State::installing);
    CHECK(has<cmd::RunInstall>(retried));
}

TEST_CASE("an install observation outside a running install is ignored", "[core]") {
    const ReleaseFacts facts;
    for (const State st : kAllStates) {
        if (st == State::installing) continue;
        INFO(to_string(st));
        const auto s = on_event(record_in(st), facts, ev::InstallObserved{died(), "b"}, 500);
        CHECK_FALSE(s.changed);
        CHECK(s.commands.empty());
    }
    auto verifying = record_in(State::installing);
    verifying.verify_started_at = 120;
    const auto s = on_event(verifying, facts, ev::InstallObserved{finished_with(1), "b"}, 500);
    CHECK_FALSE(s.changed);
    CHECK(s.commands.empty());
}
