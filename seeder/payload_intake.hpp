// Taking a payload into the repository for `publish`: the folder (or file) is copied into the
// release being built, the copy is made into a BitTorrent v2 torrent, and every file the
// torrent carries is hashed for the manifest. Internal to the publish path.
//
// The copy, not the caller's folder, is what gets hashed, torrented and seeded, so later edits
// to the source cannot change a signed release. Blocks for as long as copying and hashing take.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "core/manifest.hpp"
#include "io/swarm/torrent_file.hpp"

namespace patchswarm::seeder::publishing {

struct PayloadIntake {
    io::swarm::TorrentSummary torrent;
    std::vector<core::FileEntry> files;  // sorted by path: the manifest's file list
};

// Copies `source` (checked by check_publish_inputs: a regular file when `single_file`, else a
// folder) to `payload_root`/`name`, refusing symlinks, special files, unsafe names and payloads
// past the core:: bounds (Errc::unsafe_path, Errc::too_large; Errc::invalid_argument when it
// has no files). Then builds the torrent of the copy, an SSL torrent bound to the CA in
// `fleet_ca_file` if that file exists, and hashes each file it carries. `payload_root` must
// exist; what was copied into it stays there on failure (the caller removes the folder).
[[nodiscard]] Result<PayloadIntake> take_in_payload(const std::filesystem::path& source,
                                                    const std::string& name, bool single_file,
                                                    const std::filesystem::path& payload_root,
                                                    const std::filesystem::path& fleet_ca_file);

}  // namespace patchswarm::seeder::publishing
