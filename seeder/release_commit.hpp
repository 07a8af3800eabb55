// Committing a built release to the repository for `publish` and `publish --commit`: the
// release folder moves into releases/<ID>, then repo.json and, last, index.json are replaced
// atomically. Writing index.json is the moment of publication (`serve` and `status` read it);
// if any step fails, the steps already done are undone (see seeder/publish.hpp). Internal to
// the publish path; every function here expects the caller to hold the repository lock
// (RepoLock), so nobody else touches repo/.staging, staged/ or the documents meanwhile.
#pragma once

#include <optional>
#include <string>

#include "base/error.hpp"
#include "seeder/manifest_signing.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder::publishing {

// The repository documents as a publish finds them.
struct RepoState {
    RepoInfo info;  // for a new repository: named `repo_name` or after its folder, sequence 0
    Index index;
    bool is_new = false;
};

// Reads repo.json and index.json. Errc::invalid_argument when `repo_name` differs from the
// existing repository's name or a new repository's name is not valid; errors of
// load_repo_info / load_index otherwise.
[[nodiscard]] Result<RepoState> load_repo_state(const RepoPaths& paths,
                                                const std::optional<std::string>& repo_name);

// Errc::already_exists when `id` is in the index and `replace` is false.
[[nodiscard]] Result<void> check_not_published(const RepoState& state, const std::string& id,
                                               bool replace);

// Moves `staged` into releases/<ID> (a folder already there moves aside and is removed once
// the commit is done) and writes repo.json and index.json (the index's generation increases,
// its entry for the id is replaced). `hooks.before_step` runs before each step ("move-old",
// "move-new", "repo.json", "index.json"). On failure every step already done is undone and the
// error names the step.
[[nodiscard]] Result<void> commit_release(const RepoPaths& paths, const RepoState& state,
                                          const StagedRelease& staged, const PublishHooks& hooks);

// `publish --stage`: moves `staged` into staged/<ID> (replacing an earlier staging of the id)
// and reserves its sequence in repo.json, so a publish before the commit cannot take the same
// number. Errc::io.
[[nodiscard]] Result<void> keep_staged(const RepoPaths& paths, const RepoState& state,
                                       const StagedRelease& staged);

// Crash recovery, run before repo/.staging is cleared: moves back into releases/ every release
// folder a crashed commit had moved aside ("move-old") and not replaced.
void restore_moved_releases(const RepoPaths& paths);

// Removes repo/.staging and everything in it; a failure is logged, not returned.
void remove_staging(const RepoPaths& paths);

}  // namespace patchswarm::seeder::publishing
