#include "seeder/catalog.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>

#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/swarm/torrent_file.hpp"
#include "seeder/tracker.hpp"

namespace patchswarm::seeder {

FileStamp stamp_of(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return {static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
            static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
}

Result<ServedRelease> load_release(const RepoPaths& paths, const core::FeedEntry& entry) {
    auto manifest = io::read_file(paths.manifest(entry.id), 2 * core::kMaxManifestBytes);
    if (!manifest) return std::unexpected(manifest.error());
    if (crypto::sha256_hex(crypto::as_bytes(*manifest)) != entry.manifest_sha256) {
        return fail(Errc::hash_mismatch, "manifest.json does not match index.json");
    }
    auto torrent = io::read_file(paths.torrent(entry.id), kMaxTorrentBytes);
    if (!torrent) return std::unexpected(torrent.error());
    ServedRelease release;
    release.entry = entry;
    // Our own repository's manifest: parsed for its rollout policy, which serve enforces.
    auto env = core::parse_envelope(*manifest, 2 * core::kMaxManifestBytes);
    if (!env) return std::unexpected(env.error());
    auto m = core::parse_manifest(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    if (!m) return std::unexpected(m.error());
    release.policy = {m->created, m->rollout};
    release.torrent.assign(torrent->begin(), torrent->end());
    auto summary = io::swarm::inspect_torrent(release.torrent);
    if (!summary) return std::unexpected(summary.error());
    auto hash = tracker::announce_hash(summary->infohash_v2);
    if (!hash) return std::unexpected(hash.error());
    release.announce_hash = std::move(*hash);
    release.ssl = !summary->ssl_root_cert.empty();
    return release;
}

Result<bool> Catalog::reload(bool force) {
    const FileStamp stamp = stamp_of(paths_.index_json());
    if (stamp == stamp_ && have_index_ && !force) return false;
    auto index = load_index(paths_);
    if (!index) {
        // Keep serving the last good index; say so once per version of the file.
        const bool new_version = stamp != stamp_ || !have_index_;
        stamp_ = stamp;
        if (new_version || force) return std::unexpected(index.error());
        return false;
    }
    stamp_ = stamp;
    if (have_index_ && index->releases == listed_ && !force) return false;
    have_index_ = true;
    listed_ = std::move(index->releases);
    served_.clear();
    ssl_torrents_.clear();
    for (const auto& entry : listed_) {
        auto release = load_release(paths_, entry);
        if (!release) {
            spdlog::error("release {} cannot be served: {}", entry.id, release.error().message);
            continue;
        }
        if (release->ssl) ssl_torrents_.insert(release->announce_hash);
        served_.emplace(entry.id, std::move(*release));
    }
    return true;
}

bool Catalog::is_listed(std::string_view id) const {
    return std::any_of(listed_.begin(), listed_.end(), [&](const auto& e) { return e.id == id; });
}

std::map<std::string, std::string> Catalog::torrents() const {
    std::map<std::string, std::string> out;
    for (const auto& [id, release] : served_) out.emplace(release.announce_hash, id);
    return out;
}

}  // namespace patchswarm::seeder
