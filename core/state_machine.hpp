// The endpoint's per-release state machine: a pure step function.
//
//   announced → downloading → verified → waiting → installing → reboot_pending → effective
//   with failed (retryable, reason + attempt count) and rejected (never retried).
//
// The agent owns the I/O. For every event it calls on_event(), persists the returned record when
// `changed` is set (before acting!), then carries out the returned commands. Nothing here sleeps,
// reads a clock, or touches disk or network, so every transition and every crash point is
// testable with plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/install_recovery.hpp"

namespace patchswarm::core {

enum class State {
    announced,       // manifest verified and stored; nothing fetched yet
    downloading,     // in the swarm
    verified,        // every byte matched the manifest, staged in the release folder
    waiting,         // verified, but policy (ring/window/deferral/halt) says not yet
    installing,      // install (or its post-install verify) is running
    reboot_pending,  // installed, needs a reboot that has not happened yet
    effective,       // installed, rebooted if required, verify passed: the patch is in effect
    failed,          // last attempt failed; retried with backoff while attempts remain
    rejected,        // bad signature/expired/rollback/unsafe path: never retried
};

std::string_view to_string(State);
std::optional<State> parse_state(std::string_view);

enum class Phase { download, install, verify };
std::string_view to_string(Phase);
std::optional<Phase> parse_phase(std::string_view);

// Everything the machine knows about one release. Persisted verbatim by the agent.
struct ReleaseRecord {
    std::string id;
    State state = State::announced;
    std::int64_t entered_at = 0;       // unix seconds the current state was entered
    std::uint32_t attempts = 0;        // failed attempts so far (download + install + verify)
    std::int64_t next_attempt_at = 0;  // when failed: earliest retry; 0 = no retry left
    Phase failed_phase = Phase::download;
    std::string reason;                  // why failed/rejected/waiting; empty otherwise
    std::string boot_id_at_install;      // boot id when the install finished
    std::int64_t verify_started_at = 0;  // a post-install verify command is running
    int last_exit_code = 0;
    // When reboot_pending: when the agent was last told to reboot (cmd::RunReboot); 0 = never.
    // Keeps a reboot command from running on every tick while the machine goes down.
    std::int64_t reboot_requested_at = 0;
    // The last `patchswarm-seeder retry` generation (signed feed) this release has seen; each
    // generation re-arms a failed release once (EndpointController::set_feed_policy).
    std::uint32_t retry_generation = 0;

    // Field-wise; Step::changed is computed with it, so a new field is persisted automatically.
    bool operator==(const ReleaseRecord&) const = default;
};

// Facts from the signed manifest that steer the machine.
struct ReleaseFacts {
    bool reboot_required = false;  // RebootPolicy::required
    bool reboot_if_3010 = true;    // exit code 3010 means "success, reboot required"
    bool has_verify = false;       // manifest carries a verify command
    bool rerun_safe = false;       // Manifest::idempotent: a dead installer may run again
};

struct RetryPolicy {
    std::uint32_t max_attempts = 5;
    std::int64_t backoff_base_s = 30;  // 30 s, 60 s, 120 s, ... capped
    std::int64_t backoff_cap_s = 3600;
};

inline constexpr int kExitRebootRequired = 3010;
// Windows Installer's "success, and I have started the reboot": like 3010, but the agent must not
// start a second one. Only the Windows agent sees it (POSIX exit statuses have 8 bits).
inline constexpr int kExitRebootInitiated = 1641;

namespace ev {
struct Announced {};         // record just created from a verified manifest
struct DownloadStarted {};   // torrent added to the swarm
struct DownloadComplete {};  // libtorrent has every piece
struct PayloadVerified {
    bool ok = false;
    std::string reason;  // when !ok
};
struct InstallFinished {
    int exit_code = 0;
    bool timed_out = false;
    std::string output_tail;  // last bytes of stdout+stderr, for the failure reason
    std::string boot_id;      // boot id at the moment the install finished
};
struct VerifyFinished {
    bool ok = false;
    std::string reason;
};
// Time passes. Sent by the agent after every transition and on a periodic timer.
struct Tick {
    std::string boot_id;          // current boot id
    bool install_allowed = true;  // rollout policy verdict (window, ring, deferral, halt)
    std::string wait_reason;      // why not, when !install_allowed
    // For reboot_pending: may the agent reboot the machine now (policy allows it and a reboot
    // command is configured)? If not, reboot_wait_reason says why; it becomes the reason.
    bool reboot_allowed = false;
    std::string reboot_wait_reason;
};
// What the install's supervisor left behind (cmd::ProbeInstall / cmd::AwaitInstall, or the end
// of cmd::RunInstall): core/install_recovery.hpp decides what it means.
struct InstallObserved {
    InstallObservation seen;
    std::string boot_id;  // boot id at the moment of the observation (as InstallFinished)
};
struct Resumed {};  // the daemon restarted and loaded this record from disk
// The release can never be installed (its torrent does not match the signed manifest, say).
struct Rejected {
    std::string reason;
};
}  // namespace ev

using Event = std::variant<ev::Announced, ev::DownloadStarted, ev::DownloadComplete,
                           ev::PayloadVerified, ev::InstallFinished, ev::VerifyFinished, ev::Tick,
                           ev::Resumed, ev::Rejected, ev::InstallObserved>;

namespace cmd {
struct StartDownload {};  // add (or resume) the torrent
struct Redownload {};     // force a recheck and fetch what fails
struct VerifyPayload {};  // hash every file against the manifest and stage it
// Start the install under its supervisor (it outlives the agent), wait for it to end, then
// answer ev::InstallObserved.
struct RunInstall {};
// Look at the install's supervisor record now (after a restart): ev::InstallObserved.
struct ProbeInstall {};
// Wait until the supervised install (or its orphaned installer) has ended, then
// ev::InstallObserved. Never starts anything.
struct AwaitInstall {};
struct RunVerify {};
struct SendReport {};  // tell the seeder about the (new) state
struct RunReboot {};   // run the configured reboot command (the boot id changes when it worked)
struct LeaveSwarm {};  // remove the torrent from the swarm (the release was rejected)
// Issued by core::EndpointController, never by on_event:
struct AddWebSeed {};          // (re-)add the seeder's HTTP web seed: the swarm gave nothing
struct SaveResumeData {};      // ask the swarm for resume data of every torrent
struct RemoveReleaseFiles {};  // a replaced release: leave the swarm, delete folder and resume file
}  // namespace cmd

using Command = std::variant<cmd::StartDownload, cmd::Redownload, cmd::VerifyPayload,
                             cmd::RunInstall, cmd::RunVerify, cmd::SendReport, cmd::RunReboot,
                             cmd::LeaveSwarm, cmd::AddWebSeed, cmd::SaveResumeData,
                             cmd::RemoveReleaseFiles, cmd::ProbeInstall, cmd::AwaitInstall>;

// A reboot that was asked for and did not happen (the command failed, or the machine came back
// with the same boot id) is asked for again after this long, while policy still allows it.
inline constexpr std::int64_t kRebootRetryS = 3600;

struct Step {
    ReleaseRecord record;
    std::vector<Command> commands;
    bool changed = false;  // record differs from the input: persist before acting
};

// The step function. `now` is unix seconds from the injected clock.
Step on_event(const ReleaseRecord& current, const ReleaseFacts& facts, const Event& event,
              std::int64_t now, const RetryPolicy& retry = {});

// Delay before retry number `attempts` (1-based): base * 2^(attempts-1), capped.
std::int64_t backoff_seconds(std::uint32_t attempts, const RetryPolicy& retry);

}  // namespace patchswarm::core
