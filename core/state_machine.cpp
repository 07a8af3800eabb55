#include "core/state_machine.hpp"

#include <array>
#include <string>
#include <utility>

namespace patchswarm::core {

namespace {

// A failure reason travels in every report and is shown on the dashboard: keep the useful end of
// the install output but never let a chatty installer bloat the record.
constexpr std::size_t kOutputTailBytes = 1000;

// POSIX exit statuses are 8 bits wide, so an installer that exits with the Windows Installer
// convention 3010 ("success, reboot required") is seen as 3010 % 256 == 194 on Linux.
constexpr int kExitRebootRequiredPosix = kExitRebootRequired % 256;

constexpr std::array kStateNames{
    std::pair{State::announced, std::string_view{"announced"}},
    std::pair{State::downloading, std::string_view{"downloading"}},
    std::pair{State::verified, std::string_view{"verified"}},
    std::pair{State::waiting, std::string_view{"waiting"}},
    std::pair{State::installing, std::string_view{"installing"}},
    std::pair{State::reboot_pending, std::string_view{"reboot_pending"}},
    std::pair{State::effective, std::string_view{"effective"}},
    std::pair{State::failed, std::string_view{"failed"}},
    std::pair{State::rejected, std::string_view{"rejected"}},
};

constexpr std::array kPhaseNames{
    std::pair{Phase::download, std::string_view{"download"}},
    std::pair{Phase::install, std::string_view{"install"}},
    std::pair{Phase::verify, std::string_view{"verify"}},
};

bool is_reboot_exit(int code) {
    return code == kExitRebootRequired || code == kExitRebootRequiredPosix ||
           code == kExitRebootInitiated;
}

bool is_success_exit(int code) {
    return code == 0 || is_reboot_exit(code);
}

// Reports are JSON, and JSON strings must be valid UTF-8; installer output is arbitrary bytes.
// Invalid sequences become '?' so a binary-spewing installer cannot break reporting.
std::string sanitize_utf8(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        const auto c = static_cast<unsigned char>(in[i]);
        std::size_t len = 0;
        if (c < 0x80) {
            len = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
        }
        bool valid = len != 0 && i + len <= in.size();
        for (std::size_t k = 1; valid && k < len; ++k) {
            valid = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
        }
        if (valid && len >= 3) {
            // Reject overlong forms, UTF-16 surrogates and code points above U+10FFFF.
            const auto c1 = static_cast<unsigned char>(in[i + 1]);
            valid = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0) &&
                    !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
        }
        if (!valid) {
            out.push_back('?');
            ++i;
            continue;
        }
        out.append(in.substr(i, len));
        i += len;
    }
    return out;
}

std::string output_tail(std::string_view output) {
    if (output.size() <= kOutputTailBytes) {
        return sanitize_utf8(output);
    }
    auto tail = output.substr(output.size() - kOutputTailBytes);
    // Do not start in the middle of a multi-byte character: skip its continuation bytes.
    std::size_t skip = 0;
    while (skip < 3 && skip < tail.size() &&
           (static_cast<unsigned char>(tail[skip]) & 0xC0) == 0x80) {
        ++skip;
    }
    return "..." + sanitize_utf8(tail.substr(skip));
}

std::string install_failure_reason(const ev::InstallFinished& e) {
    std::string reason = e.timed_out
                             ? "install timed out (exit code " + std::to_string(e.exit_code) + ")"
                             : "install failed with exit code " + std::to_string(e.exit_code);
    if (!e.output_tail.empty()) {
        reason += ": " + output_tail(e.output_tail);
    }
    return reason;
}

std::string with_detail(std::string_view what, std::string_view detail) {
    std::string reason{what};
    if (!detail.empty()) {
        reason += ": ";
        reason += sanitize_utf8(detail);
    }
    return reason;
}

// One step of the machine. Each handler edits a copy of the record; finish() decides whether it
// changed and appends the report, so no handler can forget either.
class Machine {
  public:
    Machine(const ReleaseRecord& current, const ReleaseFacts& facts, std::int64_t now,
            const RetryPolicy& retry)
        : current_(current), facts_(facts), now_(now), retry_(retry), rec_(current) {}

    // Terminal records never move again, whatever the agent sends.
    bool terminal() const {
        return current_.state == State::effective || current_.state == State::rejected;
    }

    void operator()(const ev::Announced&) {
        if (rec_.state != State::announced) return;
        // A freshly created record may not carry its creation time yet; reports need one.
        if (rec_.entered_at == 0) rec_.entered_at = now_;
        emit(cmd::StartDownload{});
        report_ = true;
    }

    void operator()(const ev::DownloadStarted&) {
        const bool retrying = rec_.state == State::failed && rec_.failed_phase == Phase::download;
        if (rec_.state == State::announced || retrying) enter(State::downloading);
    }

    void operator()(const ev::DownloadComplete&) {
        if (rec_.state == State::downloading) emit(cmd::VerifyPayload{});
    }

    void operator()(const ev::PayloadVerified& e) {
        if (rec_.state != State::downloading) return;
        if (e.ok) {
            enter(State::verified);
        } else {
            fail(Phase::download, with_detail("payload verification failed", e.reason));
        }
    }

    void operator()(const ev::InstallFinished& e) {
        // While a post-install verify runs, the install is over: a late duplicate is noise.
        if (rec_.state != State::installing || rec_.verify_started_at != 0) return;
        rec_.last_exit_code = e.exit_code;
        if (e.timed_out || !is_success_exit(e.exit_code)) {
            fail(Phase::install, install_failure_reason(e));
            return;
        }
        const bool reboot =
            facts_.reboot_required || (is_reboot_exit(e.exit_code) && facts_.reboot_if_3010);
        if (reboot) {
            rec_.boot_id_at_install = e.boot_id;
            enter(State::reboot_pending);
            if (e.exit_code == kExitRebootInitiated) {
                // Counts as our own reboot request: no RunReboot until kRebootRetryS has passed.
                rec_.reboot_requested_at = now_;
                set_reason("the installer started a reboot (exit 1641)");
            }
        } else if (facts_.has_verify) {
            start_verify();
        } else {
            enter(State::effective);
        }
    }

    void operator()(const ev::VerifyFinished& e) {
        const bool verifying =
            (rec_.state == State::installing || rec_.state == State::reboot_pending) &&
            rec_.verify_started_at != 0;
        if (!verifying) return;
        rec_.verify_started_at = 0;
        if (e.ok) {
            enter(State::effective);
        } else {
            fail(Phase::verify, with_detail("verify failed", e.reason));
        }
    }

    void operator()(const ev::Tick& e) {
        switch (rec_.state) {
            case State::verified:
            case State::waiting:
                return tick_policy(e);
            case State::failed:
                return tick_retry(e);
            case State::reboot_pending:
                return tick_reboot(e);
            default:
                return;
        }
    }

    void operator()(const ev::Resumed&) {
        switch (rec_.state) {
            case State::announced:
            case State::downloading:
                emit(cmd::StartDownload{});
                return;
            case State::installing:
                if (rec_.verify_started_at == 0) {
                    // The install runs under a supervisor that outlived the agent: find out
                    // what became of it (ev::InstallObserved) before anything else. An
                    // interrupted agent costs no attempt and never starts a second install.
                    emit(cmd::ProbeInstall{});
                } else {
                    // The install finished; only its verify was cut short. Verify is
                    // idempotent, so run it again (it keeps the record out of the
                    // "interrupted install" branch above).
                    start_verify();
                }
                return;
            case State::reboot_pending:
                // The next Tick still sees the new boot id and starts the verify afresh.
                rec_.verify_started_at = 0;
                return;
            default:
                return;
        }
    }

    // Recovery of a supervised install (core/install_recovery.hpp), kept apart from the rest.
    void operator()(const ev::InstallObserved& e) {
        if (rec_.state != State::installing || rec_.verify_started_at != 0) return;
        switch (decide_install_recovery(e.seen, facts_.rerun_safe)) {
            case InstallRecovery::adopt:
                return (*this)(ev::InstallFinished{e.seen.exit_code, e.seen.timed_out,
                                                   e.seen.output_tail, e.boot_id});
            case InstallRecovery::wait:
                return emit(cmd::AwaitInstall{});
            case InstallRecovery::start:
                return emit(cmd::RunInstall{});
            case InstallRecovery::rerun:
                return fail(Phase::install, installer_died_reason(e.seen, true));
            case InstallRecovery::hold:
                fail(Phase::install, installer_died_reason(e.seen, false));
                rec_.next_attempt_at = 0;  // no automatic retry: an operator decides
                return;
        }
    }

    void operator()(const ev::Rejected& e) {
        rec_.state = State::rejected;
        rec_.entered_at = now_;
        rec_.reason = e.reason;
        rec_.verify_started_at = 0;
        emit(cmd::LeaveSwarm{});
        report_ = true;
    }

    Step finish() && {
        if (report_) emit(cmd::SendReport{});
        Step step{std::move(rec_), std::move(commands_), false};
        step.changed = step.record != current_;
        return step;
    }

  private:
    void emit(Command c) { commands_.push_back(std::move(c)); }

    void enter(State to) {
        rec_.state = to;
        rec_.entered_at = now_;
        if (to != State::failed && to != State::waiting && to != State::rejected) {
            rec_.reason.clear();
        }
        if (to != State::failed) rec_.next_attempt_at = 0;
        report_ = true;
    }

    void fail(Phase phase, std::string reason) {
        rec_.failed_phase = phase;
        ++rec_.attempts;
        rec_.next_attempt_at = rec_.attempts >= retry_.max_attempts
                                   ? 0
                                   : now_ + backoff_seconds(rec_.attempts, retry_);
        rec_.verify_started_at = 0;
        enter(State::failed);
        rec_.reason = std::move(reason);
    }

    void start_install() {
        enter(State::installing);
        emit(cmd::RunInstall{});
    }

    void start_verify() {
        rec_.verify_started_at = now_;
        emit(cmd::RunVerify{});
    }

    void wait(const ev::Tick& e) {
        if (rec_.state != State::waiting) enter(State::waiting);
        if (rec_.reason != e.wait_reason) {
            rec_.reason = e.wait_reason;
            report_ = true;  // the seeder shows why an endpoint waits
        }
    }

    void tick_policy(const ev::Tick& e) {
        if (e.install_allowed) {
            start_install();
        } else {
            wait(e);
        }
    }

    void tick_retry(const ev::Tick& e) {
        if (rec_.next_attempt_at == 0 || now_ < rec_.next_attempt_at) return;
        switch (rec_.failed_phase) {
            case Phase::download:
                enter(State::downloading);
                emit(cmd::Redownload{});
                return;
            case Phase::install:
            case Phase::verify:
                // A failed verify is retried by installing again. Either way it is an install,
                // so the rollout policy (window, deferral, halt) must allow it.
                tick_policy(e);
                return;
        }
    }

    void tick_reboot(const ev::Tick& e) {
        // An unknown boot id on either side proves nothing: never claim a reboot we cannot see.
        const bool rebooted = !e.boot_id.empty() && !rec_.boot_id_at_install.empty() &&
                              e.boot_id != rec_.boot_id_at_install;
        if (rec_.verify_started_at != 0) return;
        if (!rebooted) return tick_reboot_policy(e);
        rec_.reboot_requested_at = 0;
        if (facts_.has_verify) {
            start_verify();
        } else {
            enter(State::effective);
        }
    }

    // Still on the boot of the install: reboot if the agent may, else say why not. The reason
    // travels in reports, so the seeder shows "reboot pending: outside maintenance window...".
    void tick_reboot_policy(const ev::Tick& e) {
        const bool asked_recently =
            rec_.reboot_requested_at != 0 && now_ - rec_.reboot_requested_at < kRebootRetryS;
        if (e.reboot_allowed && !asked_recently) {
            rec_.reboot_requested_at = now_;
            set_reason("reboot command started");
            emit(cmd::RunReboot{});
            return;
        }
        if (!e.reboot_allowed) set_reason(e.reboot_wait_reason);
    }

    void set_reason(const std::string& reason) {
        if (rec_.reason == reason) return;
        rec_.reason = reason;
        report_ = true;
    }

    const ReleaseRecord& current_;
    const ReleaseFacts& facts_;
    const std::int64_t now_;
    const RetryPolicy& retry_;
    ReleaseRecord rec_;
    std::vector<Command> commands_;
    bool report_ = false;
};

}  // namespace

std::string_view to_string(State state) {
    for (const auto& [value, name] : kStateNames) {
        if (value == state) return name;
    }
    return "unknown";
}

std::optional<State> parse_state(std::string_view text) {
    for (const auto& [value, name] : kStateNames) {
        if (name == text) return value;
    }
    return std::nullopt;
}

std::string_view to_string(Phase phase) {
    for (const auto& [value, name] : kPhaseNames) {
        if (value == phase) return name;
    }
    return "unknown";
}

std::optional<Phase> parse_phase(std::string_view text) {
    for (const auto& [value, name] : kPhaseNames) {
        if (name == text) return value;
    }
    return std::nullopt;
}

std::int64_t backoff_seconds(std::uint32_t attempts, const RetryPolicy& retry) {
    if (retry.backoff_base_s <= 0 || retry.backoff_cap_s <= 0) return 0;
    const std::int64_t cap = retry.backoff_cap_s;
    std::int64_t delay = retry.backoff_base_s;
    // Doubling stops at the cap, so neither a large attempt count nor a large cap can overflow.
    for (std::uint32_t i = 1; i < attempts && delay < cap; ++i) {
        delay = delay > cap / 2 ? cap : delay * 2;
    }
    return delay < cap ? delay : cap;
}

Step on_event(const ReleaseRecord& current, const ReleaseFacts& facts, const Event& event,
              std::int64_t now, const RetryPolicy& retry) {
    Machine machine{current, facts, now, retry};
    if (!machine.terminal()) std::visit(machine, event);
    return std::move(machine).finish();
}

}  // namespace patchswarm::core
