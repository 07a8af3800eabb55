// Runs a child process from an argv list: never through a shell, with a timeout and captured
// output. Blocking; the agent calls it from a worker thread and posts the result back.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::io {

struct ProcessResult {
    int exit_code = -1;      // exit status, or 128+signal when killed by a signal
    bool timed_out = false;  // killed (whole process group) after the timeout
    std::string output;      // stdout and stderr interleaved; the last max_output bytes
};

struct ProcessSpec {
    std::vector<std::string> argv;  // argv[0] resolved against cwd when it contains a '/'
    std::filesystem::path cwd;
    std::chrono::seconds timeout{1800};
    std::size_t max_output = 64 * 1024;
    std::map<std::string, std::string> extra_env;  // added to a minimal environment
};

// Errc::process if the program cannot be started (not found, not executable).
[[nodiscard]] Result<ProcessResult> run_process(const ProcessSpec& spec);

}  // namespace patchswarm::io
