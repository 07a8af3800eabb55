// The `publish` path (seeder/publish.hpp) from lock to result; its steps live beside it:
// publish_inputs (checking the options), payload_intake (copying, hashing and the torrent),
// manifest_signing (building, signing and staging the manifest) and release_commit (moving the
// release in and writing repo.json, then index.json, with undo).
#include "seeder/publish.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <span>
#include <tuple>

#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"
#include "seeder/manifest_signing.hpp"
#include "seeder/publish_detail.hpp"
#include "seeder/publish_inputs.hpp"
#include "seeder/release_commit.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"

namespace patchswarm::seeder {

namespace fs = std::filesystem;
using namespace publishing;

namespace {

PublishResult result_of(const StagedRelease& staged) {
    PublishResult result;
    result.id = staged.manifest.id;
    result.sequence = staged.manifest.sequence;
    result.infohash_v2 = staged.manifest.infohash_v2;
    result.manifest_sha256 = crypto::sha256_hex(crypto::as_bytes(staged.manifest_envelope));
    result.size = staged.manifest.total_size();
    result.files = staged.manifest.files.size();
    if (staged.manifest.rollout) result.deadline = staged.manifest.rollout->deadline;
    return result;
}

// Everything after the lock: the repository is ours until this returns.
Result<PublishResult> publish_locked(const RepoPaths& paths, const PublishRequest& req,
                                     const PublishInputs& in, std::int64_t now,
                                     const PublishHooks& hooks) {
    auto root = load_current_root(paths);
    if (!root) return forward(root);
    if (auto ok = check_release_keys(*root, in.release_keys); !ok) return forward(ok);
    auto state = load_repo_state(paths, req.repo_name);
    if (!state) return forward(state);
    if (auto ok = check_not_published(*state, req.id, req.replace); !ok) return forward(ok);

    // Leftovers of a crashed publish; nobody else uses .staging while we hold the lock.
    restore_moved_releases(paths);
    remove_staging(paths);
    const std::uint64_t sequence = state->info.sequence + 1;
    auto staged = stage_release(paths, req, in, state->info.name, sequence, now);
    if (!staged) {
        remove_staging(paths);
        return forward(staged);
    }
    PublishResult result = result_of(*staged);
    result.deadline_source = std::string(core::to_string(in.deadline.source));
    result.deadline_explanation = in.deadline.explanation;
    std::tie(result.signatures, result.threshold) =
        release_signatures(*root, staged->manifest_envelope);
    if (req.stage) {
        auto kept = keep_staged(paths, *state, *staged);
        remove_staging(paths);
        if (!kept) return forward(kept);
        result.staged = true;
        return result;
    }
    if (result.signatures < result.threshold) {
        remove_staging(paths);
        return fail(Errc::bad_signature,
                    threshold_message(result.signatures, result.threshold, root->version) +
                        "; nothing was published (use --stage to gather signatures)");
    }
    auto committed = commit_release(paths, *state, *staged, hooks);
    remove_staging(paths);
    if (!committed) return forward(committed);
    return result;
}

Result<PublishResult> commit_locked(const RepoPaths& paths, const PublishCommitRequest& req,
                                    std::span<const crypto::KeyPair> keys, std::int64_t now,
                                    const PublishHooks& hooks) {
    auto root = load_current_root(paths);
    if (!root) return forward(root);
    if (auto ok = check_release_keys(*root, keys); !ok) return forward(ok);
    auto state = load_repo_state(paths, std::nullopt);
    if (!state) return forward(state);
    if (auto ok = check_not_published(*state, req.id, req.replace); !ok) return forward(ok);

    const fs::path dir = paths.staged_release(req.id);
    auto signed_staged = sign_staged_release(dir, req.id, keys, req.merge, *root);
    if (!signed_staged) return forward(signed_staged);
    const StagedRelease& staged = *signed_staged;
    PublishResult result = result_of(staged);
    std::tie(result.signatures, result.threshold) =
        release_signatures(*root, staged.manifest_envelope);
    if (result.signatures < result.threshold) {
        return fail(Errc::bad_signature,
                    threshold_message(result.signatures, result.threshold, root->version) +
                        "; the signatures so far are kept in " + dir.string());
    }
    if (auto fresh = core::check_manifest_fresh(staged.manifest, now); !fresh) {
        return fail(Errc::expired, "staged manifest: " + fresh.error().message + " (stage again)");
    }
    for (const auto& e : state->index.releases) {
        if (e.id == req.id && e.sequence >= staged.manifest.sequence) {
            return fail(Errc::rollback, "release " + req.id + " was published with sequence " +
                                            std::to_string(e.sequence) +
                                            " since it was staged (stage again)");
        }
    }
    restore_moved_releases(paths);
    remove_staging(paths);
    auto committed = commit_release(paths, *state, staged, hooks);
    remove_staging(paths);
    if (!committed) return forward(committed);
    std::error_code ec;
    fs::remove(paths.staged_dir(), ec);  // only if no other release is staged
    return result;
}

}  // namespace

std::string to_json_line(const PublishResult& r) {
    nlohmann::ordered_json doc = {{"id", r.id},
                                  {"sequence", r.sequence},
                                  {"infohash_v2", r.infohash_v2},
                                  {"manifest_sha256", r.manifest_sha256},
                                  {"size", r.size},
                                  {"files", r.files},
                                  {"staged", r.staged},
                                  {"signatures", {r.signatures, r.threshold}}};
    doc["deadline"] = r.deadline ? nlohmann::ordered_json(*r.deadline) : nullptr;
    if (r.deadline) doc["deadline_utc"] = core::format_utc(*r.deadline);
    if (!r.deadline_source.empty()) doc["deadline_source"] = r.deadline_source;
    return doc.dump();
}

Result<PublishResult> publish(const PublishRequest& req, std::int64_t now_unix,
                              const PublishHooks& hooks) {
    auto inputs = check_publish_inputs(req, now_unix);
    if (!inputs) return forward(inputs);
    const RepoPaths paths(req.repo);
    auto lock = RepoLock::acquire(paths);
    if (!lock) return forward(lock);
    auto result = publish_locked(paths, req, *inputs, now_unix, hooks);
    if (result && result->staged) {
        spdlog::info("release {} staged: sequence {}, {} of {} release signatures", result->id,
                     result->sequence, result->signatures, result->threshold);
    } else if (result) {
        spdlog::info("release {} published: sequence {}, {} files, {} bytes, manifest {}",
                     result->id, result->sequence, result->files, result->size,
                     result->manifest_sha256.substr(0, 16));
    }
    if (result && result->deadline) {
        spdlog::info("release {} deadline {} ({})", result->id, core::format_utc(*result->deadline),
                     result->deadline_explanation);
    } else if (result) {
        spdlog::info("release {}: no deadline ({})", result->id, result->deadline_explanation);
    }
    return result;
}

Result<PublishResult> publish_commit(const PublishCommitRequest& req, std::int64_t now_unix,
                                     const PublishHooks& hooks) {
    if (auto ok = core::validate_release_id(req.id); !ok) {
        return fail(Errc::invalid_argument, "--id '" + req.id + "': " + ok.error().message);
    }
    auto keys = load_secret_keys(req.release_keys, "--key");
    if (!keys) return forward(keys);
    const RepoPaths paths(req.repo);
    auto lock = RepoLock::acquire(paths);
    if (!lock) return forward(lock);
    auto result = commit_locked(paths, req, *keys, now_unix, hooks);
    if (result) {
        spdlog::info("release {} published: sequence {}, {} of {} release signatures, manifest {}",
                     result->id, result->sequence, result->signatures, result->threshold,
                     result->manifest_sha256.substr(0, 16));
    }
    return result;
}

}  // namespace patchswarm::seeder
