// `patchswarm-seeder publish`: turns a payload folder (or file) into a signed release inside a
// seeder repository (docs/PROTOCOL.md, "Seeder repository").
//
// Publishing is all-or-nothing: the release is built in repo/.staging/, then moved into
// releases/<ID> and the repository documents (feed-key.json, repo.json, index.json, the last
// one last) are replaced atomically. If any step fails, the steps already done are undone, so
// the repository is exactly as it was (including a repository the failed publish would have
// created: its feed key files are removed again). A crash half-way may leave an unindexed
// release folder or a skipped sequence number, both harmless: index.json is what `serve` reads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/manifest.hpp"

namespace patchswarm::seeder {

struct PublishRequest {
    std::filesystem::path repo;         // created and initialised on first use
    std::filesystem::path release_key;  // secret key file (crypto::load_secret_key)
    std::string id;                     // core::validate_release_id
    std::filesystem::path payload;      // file or folder; its file name becomes the torrent name
    std::string install;                // command line, split by split_command_line
    std::optional<std::string> verify;  // command line, optional
    std::string severity = "normal";    // core::parse_severity
    std::string reboot = "if_needed";   // core::parse_reboot_policy
    std::uint32_t install_timeout_s = 1800;
    std::uint32_t verify_timeout_s = 300;
    std::uint32_t expires_days = 30;
    bool replace = false;  // allow re-publishing an id that is already in the index
    // Repository name for a new repository (default: the repository folder's name). For an
    // existing repository it must match repo.json when given.
    std::optional<std::string> repo_name;
    // Staged rollout policy (docs/PROTOCOL.md, "Rollout policy file"): a JSON file holding the
    // manifest's "rollout" object, or one such object per severity ("emergency", ...) with an
    // optional "default"; the one for `severity` is signed into the manifest.
    std::optional<std::filesystem::path> rollout_file;
    // The rollout's deadline, overriding the file's: unix seconds, UTC ISO 8601 or "+48h"
    // (core::parse_time_spec, relative to the publish time). Without --rollout it makes a
    // rollout with no rings or windows: everyone installs at once.
    std::optional<std::string> deadline;
};

inline constexpr std::size_t kMaxRolloutFileBytes = 256 * 1024;

// The rollout for `severity` from a policy file's text (see PublishRequest::rollout_file).
// Errc::invalid_argument naming what is wrong.
[[nodiscard]] Result<core::Rollout> select_rollout(std::string_view policy_json,
                                                   std::string_view severity);

struct PublishResult {
    std::string id;
    std::uint64_t sequence = 0;
    std::string infohash_v2;
    std::string manifest_sha256;  // SHA-256 of manifest.json (the envelope bytes)
    std::uint64_t size = 0;       // payload bytes
    std::size_t files = 0;
};

// {"id":...,"sequence":...,"infohash_v2":...,"manifest_sha256":...,"size":...,"files":...}
std::string to_json_line(const PublishResult& result);

// Test seam: called with the name of each commit step ("init", "move-old", "move-new",
// "feed-key.json", "repo.json", "index.json") before it runs; an error aborts the publish
// there, which lets tests prove that every step is undone.
struct PublishHooks {
    std::function<Result<void>(std::string_view step)> before_step;
};

// Runs the whole publish under the repository lock. `now_unix` stamps created/expires.
// Errors: Errc::invalid_argument (bad options), Errc::already_exists (id published, no
// --replace), Errc::unsafe_path (symlink, special file or unsafe name in the payload),
// Errc::too_large (payload bounds), Errc::bad_signature (repository signed by another release
// key), Errc::permission (key file readable by others), Errc::io.
[[nodiscard]] Result<PublishResult> publish(const PublishRequest& request, std::int64_t now_unix,
                                            const PublishHooks& hooks = {});

}  // namespace patchswarm::seeder
