// The manifest of a release for `publish`: built from the request and the payload taken in,
// signed by the release keys given, written with the torrent into a folder that `publish`
// commits at once or that `publish --stage` keeps in staged/<ID> to gather signatures until
// `publish --commit`. Counting signatures against the current root is here too. Internal to the
// publish path; the caller holds the repository lock (RepoLock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include "base/error.hpp"
#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "seeder/publish.hpp"
#include "seeder/publish_inputs.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder::publishing {

// A release built but not published: `dir` holds manifest.json (`manifest_envelope`, the exact
// bytes), release.torrent and payload/.
struct StagedRelease {
    std::filesystem::path dir;
    std::string manifest_envelope;
    core::Manifest manifest;
};

// Builds the release in repo/.staging/<ID>-<8 hex>: takes the payload in (payload_intake.hpp),
// builds the manifest with `sequence` and created/expires from `now`, checks that endpoints
// would accept it, and signs it with in.release_keys (none with --stage). On failure the
// half-built folder is left for the caller's remove_staging. Errors as take_in_payload;
// Errc::invalid_argument when the manifest would be invalid; Errc::io.
[[nodiscard]] Result<StagedRelease> stage_release(const RepoPaths& paths,
                                                  const PublishRequest& request,
                                                  const PublishInputs& in,
                                                  const std::string& repository,
                                                  std::uint64_t sequence, std::int64_t now);

// `publish --commit`: reads `dir`/manifest.json (staged/<ID>), adds the signatures of `keys`
// and the valid signatures by release keys of `root` found in each `merge` file, and writes it
// back: signatures gathered are kept even when the threshold is not met yet. Errc::not_found
// when nothing is staged for `id`, Errc::malformed for a damaged or foreign manifest or merge
// file, Errc::io.
[[nodiscard]] Result<StagedRelease> sign_staged_release(
    const std::filesystem::path& dir, const std::string& id, std::span<const crypto::KeyPair> keys,
    std::span<const std::filesystem::path> merge, const CurrentRoot& root);

// Endpoints count only the release keys their root names: Errc::bad_signature for a key that
// is not one of them, whose signature every endpoint would ignore.
[[nodiscard]] Result<void> check_release_keys(const CurrentRoot& root,
                                              std::span<const crypto::KeyPair> keys);

// Valid signatures of the manifest envelope by distinct release keys of `root`, and how many
// the root requires: {have, need}.
std::pair<std::size_t, std::size_t> release_signatures(const CurrentRoot& root,
                                                       const std::string& envelope_json);

// "the manifest carries <have> valid release signature(s); root version <v> requires <need>"
std::string threshold_message(std::size_t have, std::size_t need, std::uint64_t version);

}  // namespace patchswarm::seeder::publishing
