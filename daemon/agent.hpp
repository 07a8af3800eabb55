// The endpoint agent: wires the update cycle (daemon/update_cycle.hpp), the release runner
// (swarm, stager, processes: daemon/release_runner.hpp), certificate renewal and the reporter
// around the pure core::EndpointController, and persists every record change before acting on
// it. Runs on one io_context; blocking work runs on a joined worker pool (io/worker_pool.hpp).
// Time, the boot id, state file writes and process runs come from an io::Env.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace boost::asio {
class io_context;
}
namespace patchswarm::io {
class Env;
}

namespace patchswarm::daemon {

struct AgentConfig {
    std::filesystem::path state_dir;
    std::vector<std::string> seeders;  // base URLs, tried in order ("http://127.0.0.1:8080")
    // The pinned root document (a signed root envelope, version 1 or later): the only trust
    // anchor. Later versions are fetched from the seeder and kept in state.db.
    std::filesystem::path trust_root;
    std::string bt_listen = "0.0.0.0:6881";
    // SSL torrents (enrolled endpoints only): TLS listen address; empty: bt_listen's host with
    // its port + 1 (any free port when bt_listen's port is 0).
    std::string bt_ssl_listen;
    std::string relay_listen;  // optional "ip:port": serve the signed feed/manifests to peers
    // Read by the PosixEnv the two-argument constructor makes; with an Env given, the Env's.
    std::filesystem::path boot_id_file = "/proc/sys/kernel/random/boot_id";
    std::string name;  // reported host name; defaults to gethostname()
    int heartbeat_s = 60;
    int poll_wait_s = 25;
    int webseed_after_s = 20;  // no progress for this long: add the seeder's HTTP web seed
    int max_attempts = 5;
    int backoff_base_s = 30;
    bool lsd = true;
    int download_limit = 0;  // bytes/s over all peers, 0 = unlimited
    int upload_limit = 0;
    // This endpoint's site (its LAN), as CIDRs: peers outside it, and the seeder, are WAN.
    std::vector<std::string> site_ranges;
    int wan_limit = 0;  // bytes/s each way to peers outside site_ranges, 0 = unlimited
    // Rollout: this endpoint's groups (ring membership, maintenance windows), reported to the
    // seeder. Validated names (core::validate_group_name).
    std::vector<std::string> groups;
    // Run (argv, never a shell) when a release needs a reboot and policy allows it; empty: only
    // record that a reboot is required and wait for someone to reboot.
    std::vector<std::string> reboot_command;
    std::filesystem::path zoneinfo_dir = "/usr/share/zoneinfo";
};

class Agent {
  public:
    // Opens the state directory (creating the device key on first start) and, when the endpoint
    // is enrolled (daemon/enrol.hpp), its TLS identity for SSL torrents. Throws
    // std::runtime_error with a one-line message on start-up failure.
    // `env` (clock, boot id, state file writes, processes) must outlive the Agent.
    Agent(boost::asio::io_context& io, AgentConfig config, io::Env& env);
    ~Agent();
    // Resumes the stored releases, starts the update cycle, reports and the control socket, then
    // tells systemd READY=1 (io/service_notify.hpp; a no-op outside a Type=notify unit). Later
    // state changes update the unit's STATUS= line.
    void start();
    // Saves resume data and progress, stops a running verify or reboot command, leaves a running
    // install to its supervisor (the record on disk says what was running, and the next start
    // resumes from it: io/supervise.hpp), then stops the io_context.
    void shutdown();

    // ---- the local control socket (io_context thread) ----------------------------------------
    // `patchswarmd defer`: persists the deferral of a release (daemon::defer_release: clamped
    // to its deadline; nullopt clears it) and re-evaluates the release at once. Returns what was
    // stored. Errc::not_found for an unknown release, Errc::invalid_argument for a time not
    // after now or a release past deferring, Errc::database (then nothing changed).
    [[nodiscard]] Result<std::optional<std::int64_t>> defer(const std::string& release_id,
                                                            std::optional<std::int64_t> until);
    // The endpoint status document (docs/STATUS_JSON.md, daemon::endpoint_status), as JSON
    // text: what daemon::ControlTarget::status answers.
    std::string status_json() const;

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace patchswarm::daemon
