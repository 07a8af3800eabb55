// Supervised installs: the install runs under a small supervising process in its own session
// (`patchswarmd supervise DIR KEY`, the agent's own binary re-executed through a double fork and
// setsid), so that an agent killed in the middle neither takes the installer with it nor loses
// its outcome. One install is one KEY (release id, manifest hash prefix, attempt number); in DIR
// (the state folder's installs/) it has
//   KEY.spec.json  what to run (argv, folder, timeout, environment), written by the agent;
//   KEY.lock       flock()ed for the supervisor's whole life: the lock is taken by the agent
//                  before it forks and inherited, so there is no instant at which a supervisor
//                  exists and the lock is free;
//   KEY.json       the record, replaced atomically (temporary file, fsync, rename) at each
//                  step: the supervisor's pid and start time, "launching" just before the
//                  installer is forked, the installer's pid and start time (field 22 of
//                  /proc/PID/stat, so a reused pid is told apart), then its exit status and
//                  the tail of its output;
//   KEY.log        the supervisor's own stderr.
// probe_supervised() turns these into a core::InstallObservation; core/install_recovery.hpp
// decides what it means. Linux-only mechanics (pidfd, /proc); Windows uses a job object and a
// result file behind the same io::Env calls.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>

#include "base/error.hpp"
#include "core/install_recovery.hpp"
#include "io/process.hpp"

namespace patchswarm::io {

struct SupervisedSpec {
    std::filesystem::path dir;  // where the spec, lock and record live (created if missing)
    std::string key;            // [A-Za-z0-9._-]{1,200}
    ProcessSpec process;        // its stop token is ignored: the install outlives the caller
};

// The agent side. Writes the spec, takes the lock, starts `supervisor_program supervise DIR KEY`
// detached (double fork, setsid; not a child of the caller once this returns) and returns once
// the supervisor has recorded itself (or failed to start). Blocking; call from a worker thread.
// Errc::already_exists when a supervisor for KEY holds the lock (wait for it instead);
// Errc::process when it could not be started.
[[nodiscard]] Result<void> start_supervised(const std::filesystem::path& supervisor_program,
                                            const SupervisedSpec& spec);

// What is there now: is the lock held, what does the record say, is the recorded installer
// alive. Never blocks on the install.
core::InstallObservation probe_supervised(const std::filesystem::path& dir, const std::string& key);

// Blocks until no supervisor holds KEY's lock and the recorded installer (if any) is gone.
// Returns false when `stop` was requested first (the install keeps running).
bool wait_supervised(const std::filesystem::path& dir, const std::string& key,
                     std::stop_token stop);

// The supervisor process itself (`patchswarmd supervise DIR KEY`): fd 3 is the inherited lock,
// fd 4 the pipe on which it tells the agent it has recorded itself. Returns the exit code.
int supervise_main(const std::filesystem::path& dir, const std::string& key);

// Field 22 of /proc/PID/stat (clock ticks after boot), nullopt when there is no such process.
std::optional<std::uint64_t> process_start_time(int pid);

}  // namespace patchswarm::io
