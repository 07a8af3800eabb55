#include "core/install_recovery.hpp"

namespace patchswarm::core {

InstallRecovery decide_install_recovery(const InstallObservation& seen, bool rerun_safe) {
    if (seen.finished) return InstallRecovery::adopt;
    if (seen.supervisor_running || seen.installer_running) return InstallRecovery::wait;
    // The supervisor records "launching" before it forks the installer, so a record without
    // either means the installer was never started (the agent or the supervisor died first).
    if (!seen.installer_started && !seen.launching) return InstallRecovery::start;
    return rerun_safe ? InstallRecovery::rerun : InstallRecovery::hold;
}

std::string installer_died_reason(const InstallObservation& seen, bool rerun_safe) {
    std::string reason = "installer died without an exit status (killed or power loss";
    if (!seen.detail.empty()) reason += "; " + seen.detail;
    reason += ")";
    reason += rerun_safe ? ": the release is marked idempotent, running it again"
                         : ": not re-run, the release is not marked idempotent; an operator "
                           "must check the machine and retry";
    return reason;
}

}  // namespace patchswarm::core
