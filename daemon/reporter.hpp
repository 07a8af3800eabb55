// Report building and sending: the signed state report (POST /v1/report) the seeder's dashboard
// and auto-halt read. One debounce timer (state changes come in bursts: one report a fraction of a
// second later carries them all) and the heartbeat timer.
//
// Threading: the io_context thread only. `env`, `store`, `seeders` outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/state_machine.hpp"
#include "crypto/crypto.hpp"

namespace boost::asio {
class io_context;
}
namespace patchswarm::io {
class Env;
}

namespace patchswarm::daemon {

class EndpointStore;
class SeederClient;
struct StoredRelease;

// One release as reported; the pointers are valid for the duration of the call that got them.
struct ReleaseReport {
    const core::ReleaseRecord* record = nullptr;
    const StoredRelease* stored = nullptr;  // counters and manifest hash
    std::uint64_t total_size = 0;           // the manifest's payload bytes
    std::optional<std::int64_t> deferred_until;
    std::uint32_t max_attempts = 0;  // the agent's retry policy; 0: not reported
    std::string deferred_by;         // who set the deferral; empty: not reported
};

struct ReporterIdentity {
    crypto::KeyPair device_key{};
    std::string device_id;
    std::string hostname;
    std::vector<std::string> groups;
};

// The signed POST /v1/report body for one snapshot (docs/PROTOCOL.md, "Report"): `releases` is
// the array of per-release objects, `counter` the next report counter (the caller persists it
// first). Pure; the fleet simulator (bench/fleetsim) sends the same bytes as the agent with it.
std::string sign_report(const ReporterIdentity& identity, std::uint64_t counter,
                        std::int64_t sent_at, const std::string& boot_id,
                        const nlohmann::json& releases);

class Reporter {
  public:
    using Releases = std::function<std::vector<ReleaseReport>()>;
    // `boot_id` returns the boot id the agent knows (read at start and after a reboot command).
    Reporter(boost::asio::io_context& io, io::Env& env, EndpointStore& store, SeederClient& seeders,
             ReporterIdentity identity, Releases releases, std::function<std::string()> boot_id);
    ~Reporter();

    // Starts the heartbeat: a report every `heartbeat_s` whatever happens.
    void start(int heartbeat_s);
    void stop();
    // A report soon (debounced).
    void schedule();
    void send_now();

  private:
    void arm_heartbeat();

    boost::asio::io_context& io_;
    io::Env& env_;
    EndpointStore& store_;
    SeederClient& seeders_;
    ReporterIdentity identity_;
    Releases releases_;
    std::function<std::string()> boot_id_;
    int heartbeat_s_ = 60;
    bool scheduled_ = false;
    bool stopping_ = false;
    struct Timers;
    std::unique_ptr<Timers> timers_;
};

}  // namespace patchswarm::daemon
