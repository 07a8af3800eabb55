// The Env seam: everything the programs need from the operating system, behind one interface
// (after leveldb's Env). The daemon and the seeder take an `Env&` and never call the clock, read
// the boot id, touch the filesystem for their state or start a process except through it, so that
//   - tests pass a fake (tests/support/fake_env.hpp): a clock they move by hand, a boot id they
//     change to simulate a reboot, process runs they script or hold;
//   - the Windows agent adds a second implementation beside PosixEnv (io/posix_env.cpp) and
//     nothing above io/ changes.
//
// Thread-safety: every implementation must allow calls from any thread (the agent's worker pool
// runs processes and stages files while its io_context thread reads the clock).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "core/install_recovery.hpp"
#include "io/fs.hpp"
#include "io/process.hpp"
#include "io/supervise.hpp"

namespace patchswarm::io {

inline constexpr std::string_view kDefaultBootIdFile = "/proc/sys/kernel/random/boot_id";

class Env {
  public:
    virtual ~Env() = default;

    // ---- clocks ------------------------------------------------------------------------------
    // Wall-clock time in unix seconds: expiry checks, report times, maintenance windows.
    virtual std::int64_t now_unix() = 0;
    // A monotonic clock for durations and timeouts (never jumps when the wall clock is set).
    virtual std::chrono::steady_clock::time_point now_steady() = 0;

    // ---- the machine -------------------------------------------------------------------------
    // The machine's name, as reports carry it when no --name is configured. "" when unknown.
    virtual std::string hostname() = 0;
    // The id of the current boot: it changes exactly when the machine has rebooted, which is how
    // a release that needs a reboot becomes effective. "" when it cannot be read.
    virtual std::string boot_id() = 0;

    // ---- files -------------------------------------------------------------------------------
    // As io/fs.hpp: Errc::too_large over max_bytes, Errc::not_found when absent.
    [[nodiscard]] virtual Result<std::string> read_file(const std::filesystem::path& path,
                                                        std::size_t max_bytes) = 0;
    // Crash-safe replace (temporary file, fsync, rename, fsync of the folder).
    [[nodiscard]] virtual Result<void> write_file_atomic(const std::filesystem::path& path,
                                                         std::string_view content,
                                                         std::filesystem::perms perms) = 0;
    // As io/fs.hpp's copy_file_hashed: the verified copy that stages a payload.
    [[nodiscard]] virtual Result<CopiedFile> copy_file_hashed(const std::filesystem::path& src,
                                                              const std::filesystem::path& dst,
                                                              std::uint64_t max_bytes,
                                                              bool executable) = 0;

    // ---- processes ---------------------------------------------------------------------------
    // Blocking, as io/process.hpp: from an argv list, never a shell, with a timeout. Called from
    // worker threads, never from an io_context thread.
    [[nodiscard]] virtual Result<ProcessResult> run_process(const ProcessSpec& spec) = 0;

    // ---- supervised installs (io/supervise.hpp) ----------------------------------------------
    // An install that must outlive this process: started under a supervisor in its own session
    // that records the installer's pid, start time and exit status in spec.dir. Blocking (until
    // the supervisor has recorded itself); worker threads only. Errc::already_exists when a
    // supervisor for spec.key is running.
    [[nodiscard]] virtual Result<void> start_supervised(const SupervisedSpec& spec) = 0;
    // What the supervisor of `key` left in `dir` now. Never blocks on the install.
    virtual core::InstallObservation probe_supervised(const std::filesystem::path& dir,
                                                      const std::string& key) = 0;
    // Blocks until neither the supervisor of `key` nor its recorded installer runs; false when
    // `stop` came first (the install keeps running). Worker threads only.
    virtual bool wait_supervised(const std::filesystem::path& dir, const std::string& key,
                                 std::stop_token stop) = 0;
};

// The POSIX implementation. `boot_id_file` is where boot_id() reads (Linux:
// /proc/sys/kernel/random/boot_id; tests and the demos point it elsewhere).
// `supervisor_program` is executed as `PROGRAM supervise DIR KEY` for supervised installs: by
// default the running binary itself (patchswarmd has the `supervise` mode).
inline constexpr std::string_view kSelfExe = "/proc/self/exe";
std::unique_ptr<Env> make_posix_env(std::filesystem::path boot_id_file = kDefaultBootIdFile,
                                    std::filesystem::path supervisor_program = kSelfExe);

}  // namespace patchswarm::io
