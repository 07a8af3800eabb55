// A fake io::Env for in-process tests: a clock the test moves by hand, a boot id it changes to
// simulate a reboot, and hooks that fail a file write or replace a process run (fault
// injection). Files themselves are real (tests give the program a TempDir), so what is on disk
// after a fault is what a crash would leave.
//
// Thread-safe like the interface requires: the hooks run on whichever thread calls.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "io/env.hpp"
#include "io/fs.hpp"

namespace patchswarm::test {

class FakeEnv final : public io::Env {
  public:
    explicit FakeEnv(std::int64_t start_unix = 1'800'000'000) : now_(start_unix) {}

    // ---- what the test controls --------------------------------------------------------------
    void set_now(std::int64_t unix_seconds) { now_ = unix_seconds; }
    void advance(std::int64_t seconds) { now_ += seconds; }
    void set_boot_id(std::string id) {
        std::lock_guard lock(mu_);
        boot_id_ = std::move(id);
    }
    // Called before every write_file_atomic; return an Error to make that write fail.
    void fail_writes_when(std::function<std::optional<Error>(const std::filesystem::path&)> f) {
        std::lock_guard lock(mu_);
        write_fault_ = std::move(f);
    }
    // Replaces run_process (default: the real one).
    void on_run_process(std::function<Result<io::ProcessResult>(const io::ProcessSpec&)> f) {
        std::lock_guard lock(mu_);
        run_ = std::move(f);
    }
    // Supervised installs. By default they are simulated in-process: start_supervised runs the
    // install through run_process (so on_run_process scripts it too) to its end and keeps the
    // outcome in memory, where probe_supervised finds it (for as long as this FakeEnv lives,
    // across agents). With use_supervisor(program) they are real (io/supervise.hpp), run by
    // `program supervise DIR KEY` (tests pass PATCHSWARM_DAEMON_BIN).
    void use_supervisor(std::filesystem::path program) {
        std::lock_guard lock(mu_);
        supervisor_ = std::move(program);
    }
    // Replaces probe_supervised's answer (fault injection: a dead installer, a running one).
    void on_probe_supervised(std::function<std::optional<core::InstallObservation>(
                                 const std::filesystem::path&, const std::string&)>
                                 f) {
        std::lock_guard lock(mu_);
        probe_ = std::move(f);
    }
    int supervised_starts() const { return supervised_starts_; }

    // ---- io::Env -----------------------------------------------------------------------------
    std::int64_t now_unix() override { return now_; }
    std::chrono::steady_clock::time_point now_steady() override {
        return std::chrono::steady_clock::time_point(std::chrono::seconds(now_.load()));
    }
    std::string hostname() override { return "fake-host"; }
    std::string boot_id() override {
        std::lock_guard lock(mu_);
        return boot_id_;
    }
    Result<std::string> read_file(const std::filesystem::path& path,
                                  std::size_t max_bytes) override {
        return io::read_file(path, max_bytes);
    }
    Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content,
                                   std::filesystem::perms perms) override {
        std::function<std::optional<Error>(const std::filesystem::path&)> fault;
        {
            std::lock_guard lock(mu_);
            fault = write_fault_;
        }
        if (fault) {
            if (auto e = fault(path)) return std::unexpected(*e);
        }
        return io::write_file_atomic(path, content, perms);
    }
    Result<io::CopiedFile> copy_file_hashed(const std::filesystem::path& src,
                                            const std::filesystem::path& dst,
                                            std::uint64_t max_bytes, bool executable) override {
        return io::copy_file_hashed(src, dst, max_bytes, executable);
    }
    Result<io::ProcessResult> run_process(const io::ProcessSpec& spec) override {
        std::function<Result<io::ProcessResult>(const io::ProcessSpec&)> run;
        {
            std::lock_guard lock(mu_);
            run = run_;
        }
        return run ? run(spec) : io::run_process(spec);
    }
    Result<void> start_supervised(const io::SupervisedSpec& spec) override {
        ++supervised_starts_;
        std::filesystem::path program;
        {
            std::lock_guard lock(mu_);
            program = supervisor_;
        }
        if (!program.empty()) return io::start_supervised(program, spec);
        io::ProcessSpec p = spec.process;
        p.stop = {};
        auto res = run_process(p);
        core::InstallObservation seen;
        seen.recorded = true;
        seen.installer_started = true;
        seen.finished = true;
        seen.exit_code = res ? res->exit_code : 127;
        seen.timed_out = res && res->timed_out;
        seen.output_tail = res ? res->output : res.error().message;
        std::lock_guard lock(mu_);
        simulated_[(spec.dir / spec.key).string()] = std::move(seen);
        return {};
    }
    core::InstallObservation probe_supervised(const std::filesystem::path& dir,
                                              const std::string& key) override {
        std::function<std::optional<core::InstallObservation>(const std::filesystem::path&,
                                                              const std::string&)>
            probe;
        std::filesystem::path program;
        {
            std::lock_guard lock(mu_);
            probe = probe_;
            program = supervisor_;
        }
        if (probe) {
            if (auto seen = probe(dir, key)) return *seen;
        }
        if (!program.empty()) return io::probe_supervised(dir, key);
        std::lock_guard lock(mu_);
        auto it = simulated_.find((dir / key).string());
        return it == simulated_.end() ? core::InstallObservation{} : it->second;
    }
    bool wait_supervised(const std::filesystem::path& dir, const std::string& key,
                         std::stop_token stop) override {
        std::filesystem::path program;
        {
            std::lock_guard lock(mu_);
            program = supervisor_;
        }
        if (!program.empty()) return io::wait_supervised(dir, key, std::move(stop));
        return !stop.stop_requested();
    }

  private:
    std::atomic<std::int64_t> now_;
    std::mutex mu_;
    std::string boot_id_ = "boot-1";
    std::function<std::optional<Error>(const std::filesystem::path&)> write_fault_;
    std::function<Result<io::ProcessResult>(const io::ProcessSpec&)> run_;
    std::filesystem::path supervisor_;
    std::function<std::optional<core::InstallObservation>(const std::filesystem::path&,
                                                          const std::string&)>
        probe_;
    std::map<std::string, core::InstallObservation> simulated_;
    std::atomic<int> supervised_starts_{0};
};

}  // namespace patchswarm::test
