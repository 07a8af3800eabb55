// The catalog: what index.json lists, and for each listed release that could be loaded its
// torrent, announce hash and rollout policy, checked once per version of index.json.
//
// `serve` calls reload() when the repository folder says index.json may have changed (its
// file watch) and on its coarse re-check; reload() itself decides, from the file's stamp
// (mtime, size, inode: publish replaces it by rename), whether to read it again.
//
// Threading: one thread (serve's io_context thread). Reads files; no sockets, no database.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/feed.hpp"
#include "core/rollout.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder {

// What rollout evaluation needs of a release's manifest.
struct ReleasePolicy {
    std::int64_t created = 0;  // the manifest's: ring 0 opens then
    std::optional<core::Rollout> rollout;
    bool operator==(const ReleasePolicy&) const = default;
};

// A listed release that loaded: its manifest matches index.json and parses, its torrent is a v2
// torrent.
struct ServedRelease {
    core::FeedEntry entry;
    std::string announce_hash;  // first 20 bytes of the v2 info-hash (raw, as announced)
    bool ssl = false;           // an SSL torrent: peers meet on the SSL listen port
    std::vector<std::uint8_t> torrent;
    ReleasePolicy policy;
};

// Identifies a version of a file without reading it. Default: the file does not exist.
struct FileStamp {
    std::int64_t mtime_ns = -1;
    std::int64_t size = -1;
    std::uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_of(const std::filesystem::path& path);

class Catalog {
  public:
    explicit Catalog(RepoPaths paths) : paths_(std::move(paths)) {}

    // Reads index.json again if its stamp changed since the last call (always with `force`).
    // Returns true when the listed releases differ from before (always true with `force`), and
    // then reloads each release's manifest and torrent. A release that cannot be loaded is
    // logged and left out of served() (it stays listed). Errors: load_index's, when index.json
    // cannot be read or parsed: the last good catalog stays, and the error is returned once per
    // version of the file (later calls return false until it changes).
    [[nodiscard]] Result<bool> reload(bool force = false);

    // index.json's releases, in its order.
    const std::vector<core::FeedEntry>& listed() const { return listed_; }
    // The listed releases that loaded, by id.
    const std::map<std::string, ServedRelease>& served() const { return served_; }

    bool is_listed(std::string_view id) const;
    bool is_ssl_torrent(std::string_view announce_hash) const {
        return ssl_torrents_.contains(std::string(announce_hash));
    }
    // announce hash -> release id, for the tracker.
    std::map<std::string, std::string> torrents() const;

  private:
    RepoPaths paths_;
    FileStamp stamp_;
    bool have_index_ = false;
    std::vector<core::FeedEntry> listed_;
    std::map<std::string, ServedRelease> served_;
    std::set<std::string> ssl_torrents_;
};

// Loads one listed release (see ServedRelease). Errc::hash_mismatch when manifest.json is not
// the one index.json names, else the reading and parsing errors.
[[nodiscard]] Result<ServedRelease> load_release(const RepoPaths& paths,
                                                 const core::FeedEntry& entry);

}  // namespace patchswarm::seeder
