// The seeder repository on disk (docs/PROTOCOL.md, "Seeder repository"): where each file lives,
// the small JSON documents repo.json and index.json, and the publish lock.
//
// Nothing here keeps state between calls; every function reads or writes the disk directly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "core/feed.hpp"
#include "core/root.hpp"

namespace patchswarm::seeder {

inline constexpr std::size_t kMaxRepoJsonBytes = 16 * 1024;
inline constexpr std::size_t kMaxIndexBytes = 4 << 20;
inline constexpr std::size_t kMaxTorrentBytes = 64 << 20;

// Paths of everything in a repository rooted at `root`. Pure path arithmetic: ids must have
// been checked with core::validate_release_id before they are joined here.
class RepoPaths {
  public:
    explicit RepoPaths(std::filesystem::path root) : root_(std::move(root)) {}

    const std::filesystem::path& root() const { return root_; }
    std::filesystem::path repo_json() const { return root_ / "repo.json"; }
    std::filesystem::path index_json() const { return root_ / "index.json"; }
    std::filesystem::path keys_dir() const { return root_ / "keys"; }
    std::filesystem::path feed_key_base() const { return keys_dir() / "feed"; }  // .key / .pub
    std::filesystem::path feed_secret_key() const { return keys_dir() / "feed.key"; }
    std::filesystem::path feed_public_key() const { return keys_dir() / "feed.pub"; }
    // The admin credential of serve's fleet view (seeder/admin_auth.hpp), mode 0600.
    std::filesystem::path admin_token() const { return keys_dir() / "admin.token"; }
    // The next feed key, created by `root rotate --new-feed-key`; it becomes feed.key when the
    // root naming it is committed.
    std::filesystem::path feed_next_key_base() const { return keys_dir() / "feed-next"; }
    std::filesystem::path feed_next_secret_key() const { return keys_dir() / "feed-next.key"; }
    std::filesystem::path feed_next_public_key() const { return keys_dir() / "feed-next.pub"; }
    // Signed root documents, every version kept: root/1.json, root/2.json, ...
    std::filesystem::path roots_dir() const { return root_ / "root"; }
    std::filesystem::path root_version(std::uint64_t version) const {
        return roots_dir() / (std::to_string(version) + ".json");
    }
    // The next root version while it gathers signatures.
    std::filesystem::path staged_root() const { return roots_dir() / "staged.json"; }
    // Releases built by `publish --stage`, gathering signatures until `publish --commit`.
    std::filesystem::path staged_dir() const { return root_ / "staged"; }
    std::filesystem::path staged_release(std::string_view id) const { return staged_dir() / id; }
    std::filesystem::path releases_dir() const { return root_ / "releases"; }
    std::filesystem::path release_dir(std::string_view id) const { return releases_dir() / id; }
    std::filesystem::path manifest(std::string_view id) const {
        return release_dir(id) / "manifest.json";
    }
    std::filesystem::path torrent(std::string_view id) const {
        return release_dir(id) / "release.torrent";
    }
    std::filesystem::path payload_dir(std::string_view id) const {
        return release_dir(id) / "payload";
    }
    std::filesystem::path fleet_db() const { return root_ / "fleet.db"; }
    std::filesystem::path lock_file() const { return root_ / ".lock"; }
    // Publish builds each release here first, then renames it into releases/.
    std::filesystem::path staging_dir() const { return root_ / ".staging"; }
    // libtorrent resume data of the seeding session (not part of the protocol).
    std::filesystem::path resume_dir() const { return root_ / ".resume"; }

  private:
    std::filesystem::path root_;
};

// repo.json: {"format":1,"name":"<repo>","sequence":<last manifest sequence>}
struct RepoInfo {
    int format = 1;
    std::string name;
    std::uint64_t sequence = 0;
};

std::string serialize_repo_info(const RepoInfo& info);
// Errc::malformed for bad JSON, another format, or a name that is not a valid repository name.
[[nodiscard]] Result<RepoInfo> parse_repo_info(std::string_view json);
// Errc::not_found when the repository has not been initialised (no repo.json).
[[nodiscard]] Result<RepoInfo> load_repo_info(const RepoPaths& paths);

// A repository name follows the release id rule: [A-Za-z0-9._-]{1,64}, not "." or "..".
[[nodiscard]] Result<void> validate_repo_name(std::string_view name);

// index.json: {"format":1,"generation":N,"releases":[{"id","sequence","manifest_sha256"}]}
// The same entries the feed lists, so they reuse core::FeedEntry.
struct Index {
    int format = 1;
    std::uint64_t generation = 0;           // increases with every publish
    std::vector<core::FeedEntry> releases;  // sorted by sequence, ids unique
};

std::string serialize_index(const Index& index);
// Bounded and validated: at most core::kMaxFeedReleases entries, valid unique ids, 64-hex
// hashes. Errc::malformed otherwise.
[[nodiscard]] Result<Index> parse_index(std::string_view json);
// An initialised repository without index.json has no releases yet: returns an empty Index.
[[nodiscard]] Result<Index> load_index(const RepoPaths& paths);

// true when `text` is exactly 64 lowercase hex characters.
bool is_sha256_hex(std::string_view text);

// The newest committed root document of a repository.
struct CurrentRoot {
    std::uint64_t version = 0;
    std::string envelope;  // exact bytes of root/<version>.json
    core::RootDocument doc;
};

// Finds the highest root/<N>.json and checks that it parses and is signed by a threshold of its
// own root keys. Errc::not_found when there is none ("root init" was never run).
[[nodiscard]] Result<CurrentRoot> load_current_root(const RepoPaths& paths);

// Exclusive advisory lock on repo/.lock (flock), held for the object's lifetime. Blocks until a
// concurrent publish has finished. Errc::io if the lock file cannot be created.
class RepoLock {
  public:
    [[nodiscard]] static Result<RepoLock> acquire(const RepoPaths& paths);
    RepoLock(RepoLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    RepoLock& operator=(RepoLock&&) = delete;
    RepoLock(const RepoLock&) = delete;
    ~RepoLock();

  private:
    explicit RepoLock(int fd) : fd_(fd) {}
    int fd_ = -1;
};

// `keygen --out base`: writes base.key (0600) and base.pub, creating the folder if needed.
// Errc::already_exists if either file exists.
[[nodiscard]] Result<void> keygen(const std::filesystem::path& base);

}  // namespace patchswarm::seeder
