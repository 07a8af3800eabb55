// Runs a child process from an argv list: never through a shell, with a timeout, an optional
// stop token and captured output. Blocking; the agent calls it from a worker thread and posts the
// result back.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <stop_token>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::io {

struct ProcessResult {
    int exit_code = -1;      // exit status, or 128+signal when killed by a signal
    bool timed_out = false;  // killed (whole process group) after the timeout
    std::string output;      // stdout and stderr interleaved; the last max_output bytes
    // Killed (whole process group) because spec.stop was requested; exit_code is -1 and output
    // empty when the stop came before the program started. Last, so that existing aggregate
    // initialisers ({exit_code, timed_out, output}) keep their meaning.
    bool stopped = false;
};

struct ProcessSpec {
    std::vector<std::string> argv;  // argv[0] resolved against cwd when it contains a '/'
    std::filesystem::path cwd;
    std::chrono::seconds timeout{1800};
    std::size_t max_output = 64 * 1024;
    std::map<std::string, std::string> extra_env;  // added to a minimal environment
    // When a stop is requested (from any thread) while the program runs, its process group gets
    // SIGTERM, then SIGKILL after a short grace, as on a timeout, and run_process returns with
    // `stopped` set. A default token never stops.
    std::stop_token stop;
    // Called (on the calling thread) with the child's pid once it has exec'd the program, before
    // run_process waits for it: the install supervisor records the installer's pid here.
    std::function<void(int pid)> on_started;
};

// Runs spec.argv to its end, its timeout or its stop, whichever comes first. After a timeout or
// a stop the whole process group has had SIGKILL before this returns (a descendant that left the
// group with setsid is out of reach); after a normal exit, whatever the program left running in
// the background is not touched. Errc::process if the program cannot be started (not
// found, not executable); Errc::invalid_argument for an empty argv or a bad variable name.
[[nodiscard]] Result<ProcessResult> run_process(const ProcessSpec& spec);

}  // namespace patchswarm::io
