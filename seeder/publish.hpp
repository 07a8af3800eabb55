// `patchswarm-seeder publish`: turns a payload folder (or file) into a signed release inside a
// seeder repository (docs/PROTOCOL.md, "Seeder repository").
//
// The repository must have a root document (`root init`); the manifest must carry valid
// signatures of a threshold of the release keys that root names. With enough --key files that
// happens in one go. Otherwise `publish --stage` builds the release into staged/<ID> (manifest
// signed by the keys given, possibly none) and `publish --commit` adds more signatures (--key,
// or --merge of copies signed offline with `sign`) and publishes once the threshold is met.
//
// Publishing is all-or-nothing: the release is built in repo/.staging/ (or taken from
// staged/<ID>), then moved into releases/<ID> and the repository documents (repo.json, then
// index.json) are replaced atomically. If any step fails, the steps already done are undone, so
// the repository is exactly as it was. A crash half-way may leave an unindexed release folder or
// a skipped sequence number, both harmless: index.json is what `serve` reads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/deadline_policy.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "io/key_files.hpp"

namespace patchswarm::seeder {

struct PublishRequest {
    std::filesystem::path repo;  // created and initialised on first use
    // Release secret key files (io::load_secret_key); each must be a release key of the
    // repository's current root. May be empty only with `stage`.
    std::vector<std::filesystem::path> release_keys;
    bool stage = false;             // build into staged/<ID> and stop; publish_commit publishes it
    std::string id;                 // core::validate_release_id
    std::filesystem::path payload;  // file or folder; its file name becomes the torrent name
    std::string install;            // command line, split by split_command_line
    std::optional<std::string> verify;  // command line, optional
    std::string severity = "normal";    // core::parse_severity
    std::string reboot = "if_needed";   // core::parse_reboot_policy
    std::uint32_t install_timeout_s = 1800;
    std::uint32_t verify_timeout_s = 300;
    std::uint32_t expires_days = 30;
    bool replace = false;  // allow re-publishing an id that is already in the index
    // core::Manifest::idempotent: an installer that died may be re-run (docs/RELIABILITY.md).
    bool idempotent = false;
    // Repository name for a new repository (default: the repository folder's name). For an
    // existing repository it must match repo.json when given.
    std::optional<std::string> repo_name;
    // Staged rollout policy (docs/PROTOCOL.md, "Rollout policy file"): a JSON file holding the
    // manifest's "rollout" object, or one such object per severity ("emergency", ...) with an
    // optional "default"; the one for `severity` is signed into the manifest.
    std::optional<std::filesystem::path> rollout_file;
    // The rollout's deadline, overriding the file's: unix seconds, UTC ISO 8601 or "+48h"
    // (core::parse_time_spec, relative to the publish time). Without it the deadline is the
    // policy's maximum for the severity (core::apply_deadline_policy; defaults emergency 24 h,
    // critical 72 h, normal 14 days). A deadline without --rollout makes a rollout with no rings
    // or windows: everyone installs at once, and deferrals end at the deadline.
    std::optional<std::string> deadline;
};

inline constexpr std::size_t kMaxRolloutFileBytes = 256 * 1024;

// The rollout for `severity` from a policy file's text (see PublishRequest::rollout_file).
// Errc::invalid_argument naming what is wrong.
[[nodiscard]] Result<core::Rollout> select_rollout(std::string_view policy_json,
                                                   std::string_view severity);
// The maximum time to deadline per severity: core::default_deadline_policy() with a policy
// file's top-level "deadlines" object applied over it (docs/PROTOCOL.md, "Rollout policy file").
[[nodiscard]] Result<core::DeadlinePolicy> select_deadline_policy(std::string_view policy_json);

struct PublishResult {
    std::string id;
    std::uint64_t sequence = 0;
    std::string infohash_v2;
    std::string manifest_sha256;  // SHA-256 of manifest.json (the envelope bytes)
    std::uint64_t size = 0;       // payload bytes
    std::size_t files = 0;
    bool staged = false;         // built and kept in staged/<ID>, not published yet
    std::size_t signatures = 0;  // valid signatures of distinct release keys
    std::size_t threshold = 0;   // required by the current root
    // The rollout deadline signed into the manifest (nullopt: none), and where it came from:
    // "flag" (--deadline), "policy_file" (the file's own), "severity_policy" (the policy's
    // maximum for the severity, core::apply_deadline_policy), "none"; "" for publish --commit.
    std::optional<std::int64_t> deadline;
    std::string deadline_source;
    std::string deadline_explanation;
};

// `publish --commit`: publishes staged/<ID> once its manifest carries a threshold of release
// signatures.
struct PublishCommitRequest {
    std::filesystem::path repo;
    std::string id;
    std::vector<std::filesystem::path> release_keys;  // more signatures to add now
    std::vector<std::filesystem::path> merge;  // copies of the staged manifest signed elsewhere
    bool replace = false;
};

// {"id":...,"sequence":...,"infohash_v2":...,"manifest_sha256":...,"size":...,"files":...,
//  "staged":bool,"signatures":[valid,required],"deadline":unix|null,"deadline_utc":"...",
//  "deadline_source":"..."}
std::string to_json_line(const PublishResult& result);

// Test seam: called with the name of each commit step ("init", "move-old", "move-new",
// "repo.json", "index.json") before it runs; an error aborts the publish
// there, which lets tests prove that every step is undone.
struct PublishHooks {
    std::function<Result<void>(std::string_view step)> before_step;
};

// Runs the whole publish under the repository lock. `now_unix` stamps created/expires.
// Errors: Errc::invalid_argument (bad options), Errc::already_exists (id published, no
// --replace), Errc::unsafe_path (symlink, special file or unsafe name in the payload),
// Errc::too_large (payload bounds), Errc::not_found (no root document), Errc::bad_signature (a
// --key that is not a release key of the root, or fewer signatures than its threshold without
// --stage), Errc::permission (key file readable by others), Errc::io.
[[nodiscard]] Result<PublishResult> publish(const PublishRequest& request, std::int64_t now_unix,
                                            const PublishHooks& hooks = {});

// Adds signatures to staged/<ID>/manifest.json (kept even when still short) and publishes it
// once a threshold of release keys has signed. Errc::not_found (nothing staged), Errc::
// bad_signature (threshold not met), Errc::expired (staged too long ago), Errc::rollback (the id
// was published with a higher sequence meanwhile), as publish otherwise.
[[nodiscard]] Result<PublishResult> publish_commit(const PublishCommitRequest& request,
                                                   std::int64_t now_unix,
                                                   const PublishHooks& hooks = {});

}  // namespace patchswarm::seeder
