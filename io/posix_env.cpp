// The POSIX Env: the system clocks, the boot id file, io/fs.hpp and io/process.hpp.
#include <unistd.h>

#include <utility>

#include "base/text.hpp"
#include "io/env.hpp"
#include "io/fs.hpp"

namespace patchswarm::io {

namespace {

// A boot id is one short line (a UUID on Linux); more than this is not a boot id file.
constexpr std::size_t kMaxBootIdBytes = 4096;

class PosixEnv final : public Env {
  public:
    PosixEnv(std::filesystem::path boot_id_file, std::filesystem::path supervisor_program)
        : boot_id_file_(std::move(boot_id_file)),
          supervisor_program_(std::move(supervisor_program)) {}

    std::int64_t now_unix() override {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    std::chrono::steady_clock::time_point now_steady() override {
        return std::chrono::steady_clock::now();
    }

    std::string hostname() override {
        char buf[256] = {};
        if (::gethostname(buf, sizeof buf - 1) != 0) return {};
        return buf;
    }

    std::string boot_id() override {
        auto content = io::read_file(boot_id_file_, kMaxBootIdBytes);
        if (!content) return {};
        return std::string(trim(*content, " \t\r\n"));
    }

    Result<std::string> read_file(const std::filesystem::path& path,
                                  std::size_t max_bytes) override {
        return io::read_file(path, max_bytes);
    }

    Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content,
                                   std::filesystem::perms perms) override {
        return io::write_file_atomic(path, content, perms);
    }

    Result<CopiedFile> copy_file_hashed(const std::filesystem::path& src,
                                        const std::filesystem::path& dst, std::uint64_t max_bytes,
                                        bool executable) override {
        return io::copy_file_hashed(src, dst, max_bytes, executable);
    }

    Result<ProcessResult> run_process(const ProcessSpec& spec) override {
        return io::run_process(spec);
    }

    Result<void> start_supervised(const SupervisedSpec& spec) override {
        return io::start_supervised(supervisor_program_, spec);
    }

    core::InstallObservation probe_supervised(const std::filesystem::path& dir,
                                              const std::string& key) override {
        return io::probe_supervised(dir, key);
    }

    bool wait_supervised(const std::filesystem::path& dir, const std::string& key,
                         std::stop_token stop) override {
        return io::wait_supervised(dir, key, std::move(stop));
    }

  private:
    const std::filesystem::path boot_id_file_;
    const std::filesystem::path supervisor_program_;
};

}  // namespace

std::unique_ptr<Env> make_posix_env(std::filesystem::path boot_id_file,
                                    std::filesystem::path supervisor_program) {
    return std::make_unique<PosixEnv>(std::move(boot_id_file), std::move(supervisor_program));
}

}  // namespace patchswarm::io
