// .torrent files: building them from a payload and checking untrusted ones. libtorrent stays in
// torrent_file.cpp; nothing here touches a session or the network.
//
// Threading: every function is safe to call from any thread (no shared state). create_torrent
// reads and hashes the whole payload, so it blocks for as long as that takes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::io::swarm {

struct TorrentFile {
    std::string path;  // relative to the torrent root: for a folder payload the torrent name is
                       // stripped ("bin/x.sh"), for a single-file payload it is the file name
    std::uint64_t size = 0;
};

struct TorrentSummary {
    std::vector<std::uint8_t> bytes;  // the .torrent file (bencoded)
    std::string infohash_v2;          // lowercase hex, 64 chars
    std::string name;                 // top-level name (folder or file)
    bool single_file = false;
    std::vector<TorrentFile> files;  // sorted by path, pad files excluded
    // An SSL torrent carries the CA (PEM) whose certificates its peers must present.
    std::string ssl_root_cert;
};

// Builds a BitTorrent v2-only torrent of a file or folder (v2: per-file SHA-256 merkle trees).
// Symlinks and special files in the payload are refused (Errc::unsafe_path). With
// `ssl_root_cert` (a CA certificate PEM) the torrent is an SSL torrent: libtorrent then talks to
// its peers only over TLS, each side presenting a certificate issued by that CA. The result has
// passed inspect_torrent: what we publish is exactly what endpoints accept.
[[nodiscard]] Result<TorrentSummary> create_torrent(const std::filesystem::path& payload,
                                                    const std::string& ssl_root_cert = {});

// Parses an untrusted .torrent with explicit load limits (size, decode depth/tokens, pieces).
// Errc::malformed / Errc::too_large; Errc::unsafe_path if a file path is not a safe relative
// path (see core::validate_relative_path). `bytes` is copied into the summary.
[[nodiscard]] Result<TorrentSummary> inspect_torrent(const std::vector<std::uint8_t>& bytes);

}  // namespace patchswarm::io::swarm
