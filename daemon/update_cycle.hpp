// The agent's update cycle over HTTP (docs/PROTOCOL.md): walk the root versions after ours
// (core::update_root, TUF 5.3), long-poll the feed with the keys the newest root names, and
// admit the manifests it announces. Each cycle judges root, feed and manifests against one clock
// reading (TUF's "fixed update start time"), so an expiry cannot slip between two checks.
//
// Persists what it verified (roots, the feed state in one transaction, rejected manifests) before
// it tells the owner; a feed whose state could not be saved is not acted on.
//
// Threading: the io_context thread only. The hooks are called there and must not destroy the
// UpdateCycle. Owns nothing but its own state; `env`, `store`, `seeders` outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
#include "core/trust.hpp"

namespace boost::asio {
class io_context;
}
namespace patchswarm::io {
class Env;
}

namespace patchswarm::daemon {

class EndpointStore;
class Relay;
class SeederClient;

class UpdateCycle {
  public:
    struct Hooks {
        // Should the manifest this entry announces be fetched (new or changed, not busy)?
        std::function<bool(const core::FeedEntry&)> wants_manifest;
        // The sequence of the manifest held for a release id (rollback check).
        std::function<std::optional<std::uint64_t>(const std::string& id)> sequence_of;
        // A feed was accepted (and, when new, persisted). Called for every answer, new or not.
        std::function<void(const core::Feed& feed, bool is_new)> on_feed;
        // A manifest verified against its feed entry; `envelope` is its exact bytes.
        std::function<void(const core::FeedEntry& entry, const std::string& envelope,
                           core::Manifest manifest)>
            on_manifest;
        // A manifest was rejected for good (stored in state.db's rejected table).
        std::function<void()> on_rejected;
    };

    UpdateCycle(boost::asio::io_context& io, io::Env& env, EndpointStore& store,
                SeederClient& seeders, int poll_wait_s, Hooks hooks);
    ~UpdateCycle();

    // Start-up: the pinned root (`trust_root` file) or the newest stored one, and the feed state
    // remembered by an earlier run. Throws std::runtime_error with a one-line message.
    void load(const std::filesystem::path& trust_root);
    // The feed stored by an earlier run (verified then), for the owner's policy at start-up.
    std::optional<core::Feed> stored_feed() const;
    // Runs update cycles until stop().
    void start();
    void stop();

    void set_relay(Relay* relay) { relay_ = relay; }
    const core::RootDocument& root() const { return root_; }
    std::uint64_t feed_sequence() const { return feed_memory_.sequence; }

  private:
    void poll();
    void fetch_root(std::uint64_t version, std::shared_ptr<std::vector<std::string>> envelopes);
    // Hands what was fetched to core::update_root and persists what verified; true to go on.
    bool walk(const std::vector<std::string>& envelopes);
    void request_feed();
    void on_feed(const std::string& body, bool answered_quickly);
    void consider(const core::FeedEntry& entry);
    void on_manifest(const core::FeedEntry& entry, const std::string& body, std::int64_t now);
    void retry_later(const std::string& why);
    void poll_after(std::chrono::milliseconds delay);

    boost::asio::io_context& io_;
    io::Env& env_;
    EndpointStore& store_;
    SeederClient& seeders_;
    const int poll_wait_s_;
    Hooks hooks_;
    Relay* relay_ = nullptr;
    core::RootDocument root_;  // the newest verified root
    core::TrustRoot trust_;    // its release and feed keys
    core::FeedMemory feed_memory_;
    std::string stored_feed_;
    std::int64_t cycle_now_ = 0;
    std::set<std::string> manifests_in_flight_;  // manifest sha256 being fetched
    std::chrono::milliseconds backoff_{1000};    // the next retry's, before jitter
    static constexpr std::chrono::milliseconds kMaxBackoff{30'000};
    static constexpr double kRetrySpread = 0.5;
    bool stopping_ = false;
    // The poll retry / pacing timer: one-shot, re-armed per cycle.
    struct Timer;
    std::unique_ptr<Timer> timer_;
};

}  // namespace patchswarm::daemon
