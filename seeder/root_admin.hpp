// `patchswarm-seeder root init|rotate|sign` and `sign`: the root document of a repository and the
// gathering of signatures from several key holders (docs/PROTOCOL.md, "Root document" and
// "Signing with several keys").
//
// A root version is first *staged* (root/staged.json, an envelope that may carry fewer
// signatures than needed). Key holders add signatures — with `root sign --key` on the machine
// holding the repository, or offline with `sign --key K FILE` on a copy that is merged back with
// `root sign --merge FILE`. As soon as the staged root carries a threshold of its own root keys
// and (from version 2 on) a threshold of the previous version's root keys, it is committed as
// root/<N>.json and served to endpoints.
//
// All functions take the repository lock; none of them needs `serve` to be stopped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/key_files.hpp"

namespace patchswarm::seeder {

inline constexpr std::uint32_t kDefaultRootExpiresDays = 365;
inline constexpr std::uint32_t kMaxRootExpiresDays = 3650;

struct RootInitRequest {
    std::filesystem::path repo;
    std::vector<std::filesystem::path> root_public_keys;  // .pub files
    std::uint32_t root_threshold = 1;
    std::vector<std::filesystem::path> release_public_keys;
    std::uint32_t release_threshold = 1;
    // The online feed key's .pub; by default the repository's keys/feed.key, created if absent.
    std::optional<std::filesystem::path> feed_public_key;
    std::uint32_t expires_days = kDefaultRootExpiresDays;
    std::vector<std::filesystem::path> sign_keys;  // root secret keys to sign with now
    std::optional<std::string> repo_name;          // default: the folder's name
};

// Changes for the next root version; what is not given is copied from the current version.
struct RootRotateRequest {
    std::filesystem::path repo;
    std::vector<std::filesystem::path> root_public_keys;
    std::optional<std::uint32_t> root_threshold;
    std::vector<std::filesystem::path> release_public_keys;
    std::optional<std::uint32_t> release_threshold;
    // A fresh online feed key (keys/feed-next.key; becomes keys/feed.key on commit).
    bool new_feed_key = false;
    std::uint32_t expires_days = kDefaultRootExpiresDays;
    std::vector<std::filesystem::path> sign_keys;
};

struct RootSignRequest {
    std::filesystem::path repo;
    std::vector<std::filesystem::path> sign_keys;
    std::vector<std::filesystem::path> merge;  // copies of root/staged.json signed elsewhere
};

// Where a root version stands after a command.
struct RootStatus {
    std::uint64_t version = 0;
    std::size_t signed_by_previous = 0;  // valid signatures of the previous version's root keys
    std::size_t previous_threshold = 0;  // 0 for version 1
    std::size_t signed_by_own = 0;
    std::size_t own_threshold = 0;
    bool committed = false;
    std::filesystem::path path;  // root/<N>.json once committed, else root/staged.json
};

// {"version":N,"committed":bool,"path":"...","signatures":{"previous":[k,m],"own":[k,m]}}
std::string to_json_line(const RootStatus& status);

// Stages root version 1 (and creates repo.json and the feed key when missing). Errc::
// already_exists if the repository has a root; Errc::invalid_argument for bad thresholds or keys;
// Errc::bad_signature if a --key is not one of the root keys.
[[nodiscard]] Result<RootStatus> root_init(const RootInitRequest& request, std::int64_t now);
// Stages version N+1 from the current one and the changes asked for (replacing any staged one).
[[nodiscard]] Result<RootStatus> root_rotate(const RootRotateRequest& request, std::int64_t now);
// Adds signatures to the staged root; commits it once both thresholds are met. Errc::not_found
// when nothing is staged; Errc::malformed if a merged file holds another document.
[[nodiscard]] Result<RootStatus> root_sign(const RootSignRequest& request);

// Adds the signature of `key` to the envelope in `file` (a staged root or manifest), in place.
// Returns a one-line description of what was signed, for the signer to read.
[[nodiscard]] Result<std::string> sign_envelope_file(const std::filesystem::path& file,
                                                     const std::filesystem::path& key);

// Copies into `into` every signature of `from` that is valid and made by one of `allowed`, and not
// yet present. Errc::malformed if `from` carries another type or other payload bytes.
[[nodiscard]] Result<std::size_t> merge_signatures(core::Envelope& into, const core::Envelope& from,
                                                   std::span<const crypto::PublicKey> allowed);

// Loads secret key files; Errc as io::load_secret_key, prefixed with the option name.
[[nodiscard]] Result<std::vector<crypto::KeyPair>> load_secret_keys(
    std::span<const std::filesystem::path> files, std::string_view option);

}  // namespace patchswarm::seeder
