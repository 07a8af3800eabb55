// What to do with an install the agent finds in `installing` after it restarted, or after it
// waited for one: a pure decision over what the install's supervisor left in the state folder
// (io/supervise.hpp records the installer's pid, its start time and its exit status).
//
// The install runs under a supervisor in its own session, so an agent that dies does not take
// it along; the agent only ever waits for it or reads its result. The rules:
//   - a recorded exit status is the outcome, whoever was running when it came: adopt it;
//   - a supervisor that still holds the install's lock, or a recorded installer that is still
//     alive (same pid and start time), is running: wait for it, never start a second one;
//   - no trace of an installer (none recorded, none about to start): it never ran, so starting
//     it now is the first run and costs no attempt;
//   - otherwise the installer died without an exit status (killed, power loss): it may have
//     done half its work. It runs again only if the signed manifest says the release is
//     idempotent (a counted attempt); else the release waits for an operator.
#pragma once

#include <string>

namespace patchswarm::core {

struct InstallObservation {
    bool supervisor_running = false;  // a supervisor holds the install's lock now
    bool recorded = false;            // the supervisor wrote its record
    bool launching = false;           // it was about to start the installer (no pid yet)
    bool installer_started = false;   // an installer pid (and start time) is recorded
    bool installer_running = false;   // that pid with that start time is alive now
    bool finished = false;            // the installer's exit status is recorded
    int exit_code = -1;
    bool timed_out = false;
    std::string output_tail;  // last bytes of the installer's output, when finished
    std::string detail;       // e.g. "installer pid 4242"; for reasons and logs

    bool operator==(const InstallObservation&) const = default;
};

enum class InstallRecovery {
    adopt,  // the install finished: its exit status is the result
    wait,   // it is still running: wait for it (cmd::AwaitInstall)
    start,  // it never started: start it now, no attempt counted
    rerun,  // it died; the release is idempotent: a counted failure, retried with backoff
    hold,   // it died; not idempotent: failed, no automatic retry (an operator decides)
};

InstallRecovery decide_install_recovery(const InstallObservation& seen, bool rerun_safe);

// The failure reason for a dead installer (rerun / hold), naming the fault.
std::string installer_died_reason(const InstallObservation& seen, bool rerun_safe);

}  // namespace patchswarm::core
