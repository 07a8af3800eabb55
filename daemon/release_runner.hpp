// Carries out the controller's commands for each release (core::Command): the swarm (join,
// recheck, web seed, leave, resume data), the torrent fetch and check, staging the verified
// payload, the install / verify / reboot commands on a joined worker pool, and the release
// folders. It decides nothing: what happened goes back as core events through the hooks.
//
// Owns the swarm session, the worker pool and each release's data (manifest, stored row,
// counters). Threading: the io_context thread only; blocking work runs on the pool, whose
// results come back on the io_context while the runner lives.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/manifest.hpp"
#include "core/state_machine.hpp"
#include "daemon/agent.hpp"
#include "daemon/endpoint_store.hpp"
#include "daemon/enrol.hpp"

namespace boost::asio {
class io_context;
}
namespace patchswarm::io {
class Env;
class WorkerPool;
struct ProcessSpec;
namespace swarm {
class Session;
struct Status;
}  // namespace swarm
}  // namespace patchswarm::io

namespace patchswarm::daemon {

class Relay;
class SeederClient;

// One release as the runner holds it.
struct RunnerRelease {
    StoredRelease stored;  // the row (its record is kept in step by the agent)
    core::Manifest manifest;
    bool in_session = false;
    bool fetching_torrent = false;
    std::string web_seed_url;           // as added (with credentials)
    std::uint64_t base_from_peers = 0;  // counters from earlier runs of the agent
    std::uint64_t base_from_seeder = 0;
    std::uint64_t base_from_lan = 0;
    std::uint64_t base_from_wan = 0;
};

class ReleaseRunner {
  public:
    struct Hooks {
        std::function<void(const std::string& id, const core::Event& event)> on_event;
        std::function<void(const std::string& id)> on_joined_swarm;
        std::function<void(const std::string& id)> on_left_swarm;
        std::function<void(const std::string& id)> on_progress;  // byte counters moved
        // A verified piece arrived (io::swarm::Callbacks::on_piece): counters are stale until
        // the next request_progress, which the owner coalesces.
        std::function<void(const std::string& id)> on_piece;
        std::function<void(const std::string& id)> on_torrent_stored;
        std::function<void()> on_reboot_finished;  // the boot id may have changed
        std::function<void()> send_report;
    };

    // Opens the swarm session (throws std::runtime_error at start-up). `tls` is the enrolment
    // (may be null); web seed credentials and SSL torrents use it.
    ReleaseRunner(boost::asio::io_context& io, io::Env& env, EndpointStore& store,
                  SeederClient& seeders, const AgentConfig& cfg, std::string device_id,
                  const std::optional<TlsIdentity>* tls, Hooks hooks);
    ~ReleaseRunner();

    void set_relay(Relay* relay) { relay_ = relay; }
    // Takes a release (loaded from state.db, or a new row already persisted), replacing any
    // held one of the same id (its files go with cmd::RemoveReleaseFiles).
    void install(RunnerRelease release);
    // At start-up: a release past its download keeps seeding for its site.
    void rejoin(const std::string& id);
    void execute(const std::string& id, const core::Command& command);
    // Pulls the swarm's byte counters of one release (all with an empty id) into its row now
    // (blocks on libtorrent's thread briefly: for a finished download and shutdown).
    void refresh_progress(const std::string& id = {});
    // Asks the swarm for what changed; the answer updates the rows later (hooks.on_progress).
    void request_progress();
    // A renewed certificate: SSL torrents and web seed credentials follow.
    void renewed(const TlsIdentity& tls);

    RunnerRelease* find(const std::string& id);
    const std::map<std::string, RunnerRelease>& releases() const { return releases_; }

    // Saves progress, stops the worker pool, then saves resume data. A running verify or reboot
    // command is killed with its process group and its result dropped; a running install is
    // left to its supervisor (io/supervise.hpp), only the wait for it stops. The record on disk
    // says `installing` (or `verifying`), and the next start resumes from it (an install: waits
    // for it or adopts its result, core/install_recovery.hpp). Results of jobs that ended
    // within `bound` are acted on before this returns. A job still running after `bound` (a
    // payload being hashed) is joined by the destructor.
    void shutdown(std::chrono::milliseconds bound);

  private:
    void open_session();
    void start_download(RunnerRelease& r, bool recheck);
    bool add_to_session(RunnerRelease& r);
    void fetch_torrent(const std::string& id);
    void on_torrent(RunnerRelease& r, std::vector<std::uint8_t> bytes);
    void verify_payload(RunnerRelease& r);
    enum class InstallStep { start, probe, await };
    static std::string install_key(const RunnerRelease& r);
    io::ProcessSpec command_spec(const RunnerRelease& r, const core::CommandLine& command) const;
    void run_install(RunnerRelease& r, InstallStep step);
    void run_verify(RunnerRelease& r, const core::CommandLine& command);
    void run_reboot(const std::string& id);
    void add_web_seed(RunnerRelease& r);
    void remove_files(const std::string& id);
    std::string with_web_credentials(const std::string& url) const;
    std::filesystem::path release_dir(const std::string& id) const;
    void refresh_one(RunnerRelease& r);
    void take_status(RunnerRelease& r, const io::swarm::Status& status);

    boost::asio::io_context& io_;
    io::Env& env_;
    EndpointStore& store_;
    SeederClient& seeders_;
    const AgentConfig& cfg_;
    const std::string device_id_;
    const std::optional<TlsIdentity>* tls_;
    Hooks hooks_;
    Relay* relay_ = nullptr;
    std::map<std::string, RunnerRelease> releases_;
    std::unique_ptr<io::swarm::Session> session_;
    std::unique_ptr<io::WorkerPool> pool_;
};

}  // namespace patchswarm::daemon
