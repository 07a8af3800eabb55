// The endpoint's durable state: one SQLite file (state.db) in the state directory. Every state
// machine record is written here before the agent acts on it, so a crash at any point resumes
// from a known state. Used from the io_context thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "core/state_machine.hpp"
#include "io/sqlite.hpp"

namespace patchswarm::daemon {

// One release as stored: the state machine record plus what the agent needs around it.
struct StoredRelease {
    core::ReleaseRecord record;
    std::string manifest_sha256;
    std::string manifest_envelope;  // exact bytes as verified
    std::uint64_t sequence = 0;
    std::vector<std::uint8_t> torrent;  // empty until fetched and checked
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;
    std::uint64_t bytes_from_peers = 0;
    std::uint64_t bytes_from_seeder = 0;
    std::uint64_t bytes_from_lan = 0;  // from peers inside this endpoint's site
    std::uint64_t bytes_from_wan = 0;  // from outside it: other sites' peers and the seeder
    std::string install_output;        // tail of the last install/verify run
};

// Download counters of one release (payload bytes).
struct ProgressBytes {
    std::uint64_t done = 0;
    std::uint64_t total = 0;
    std::uint64_t from_peers = 0;
    std::uint64_t from_seeder = 0;
    std::uint64_t from_lan = 0;
    std::uint64_t from_wan = 0;
};

struct RejectedManifest {
    std::string manifest_sha256;
    std::string id;
    std::string reason;
    std::int64_t at = 0;
};

// One trusted root document version, as verified (the exact envelope bytes).
struct StoredRoot {
    std::uint64_t version = 0;
    std::string envelope;
};

// The last accepted feed: the rollback protection (sequence and payload hash) and the feed itself
// (its halts and open rings hold across a restart while the seeder is unreachable).
struct FeedState {
    std::uint64_t sequence = 0;
    std::string payload_sha256;
    std::string envelope;  // exact bytes as verified
};

class EndpointStore {
  public:
    [[nodiscard]] static Result<std::unique_ptr<EndpointStore>> open(
        const std::filesystem::path& db_path);

    // Small key/value facts: device id, last feed sequence and hash, report counter.
    [[nodiscard]] Result<std::optional<std::string>> get_meta(const std::string& key);
    [[nodiscard]] Result<void> set_meta(const std::string& key, const std::string& value);

    // All three parts of the feed state in one transaction: either all are the new feed's or, on
    // failure, all still the old one's (a partial write would weaken rollback protection).
    [[nodiscard]] Result<void> save_feed_state(const FeedState& feed);
    // The stored feed state; sequence 0 and empty strings when none was stored.
    [[nodiscard]] Result<FeedState> load_feed_state();

    [[nodiscard]] Result<std::vector<StoredRelease>> load_releases();
    [[nodiscard]] Result<std::optional<StoredRelease>> load_release(const std::string& id);
    // Inserts or replaces the whole row.
    [[nodiscard]] Result<void> save_release(const StoredRelease& r);
    // Updates only the state machine columns (the hot path of every transition).
    [[nodiscard]] Result<void> save_record(const core::ReleaseRecord& rec);
    [[nodiscard]] Result<void> save_progress(const std::string& id, const ProgressBytes& bytes);
    [[nodiscard]] Result<void> save_torrent(const std::string& id,
                                            const std::vector<std::uint8_t>& torrent);
    [[nodiscard]] Result<void> save_output(const std::string& id, const std::string& output);

    // Keeps a verified root version (every version is kept, so a relay can serve the chain). With
    // `drop_feed_state` (the feed keys rotated) the remembered feed is forgotten in the same
    // transaction, so a crash cannot leave the new root beside the old key's feed sequence.
    [[nodiscard]] Result<void> save_root(std::uint64_t version, const std::string& envelope,
                                         bool drop_feed_state);
    // Every stored root, oldest first.
    [[nodiscard]] Result<std::vector<StoredRoot>> load_roots();
    // `patchswarmd defer ID --until T`: the release may not install or reboot before `until`
    // (the caller clamps it to the release's deadline). One deferral per release id; a new one
    // replaces it. deferral() is nullopt when there is none.
    [[nodiscard]] Result<void> set_deferral(const std::string& id, std::int64_t until,
                                            std::int64_t requested_at);
    [[nodiscard]] Result<void> clear_deferral(const std::string& id);
    [[nodiscard]] Result<std::optional<std::int64_t>> deferral(const std::string& id);

    [[nodiscard]] Result<void> add_rejected(const RejectedManifest& r);
    [[nodiscard]] Result<bool> is_rejected(const std::string& manifest_sha256);
    [[nodiscard]] Result<std::vector<RejectedManifest>> load_rejected();

  private:
    explicit EndpointStore(std::unique_ptr<io::Db> db) : db_(std::move(db)) {}
    // Brings an older state.db up to date: columns added after the first schema, and the
    // issue 2 feed-key delegation dropped (see the roots table).
    [[nodiscard]] Result<void> migrate();
    std::unique_ptr<io::Db> db_;
};

}  // namespace patchswarm::daemon
