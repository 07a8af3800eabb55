#include "seeder/release_commit.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "seeder/publish_detail.hpp"

namespace patchswarm::seeder::publishing {

namespace fs = std::filesystem;

namespace {

struct FileSnapshot {
    fs::path path;
    std::optional<std::string> content;  // nullopt: the file did not exist
};

Result<FileSnapshot> snapshot(const fs::path& path, std::size_t max_bytes) {
    auto text = io::read_file(path, max_bytes);
    if (text) return FileSnapshot{path, std::move(*text)};
    if (text.error().code == Errc::not_found) return FileSnapshot{path, std::nullopt};
    return forward(text);
}

void restore(const FileSnapshot& snap) {
    std::error_code ec;
    if (!snap.content) {
        fs::remove(snap.path, ec);
    } else if (auto ok = io::write_file_atomic(snap.path, *snap.content); !ok) {
        spdlog::error("rollback: cannot restore {}: {}", snap.path.string(), ok.error().message);
    }
}

Result<void> fsync_dir(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(Errc::io, "cannot open " + dir.string());
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return fail(Errc::io, "cannot fsync " + dir.string());
    return {};
}

Result<void> rename_dir(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::rename(from, to, ec);
    if (ec) return io_error("cannot move " + from.string() + " to", to, ec);
    return fsync_dir(to.parent_path());
}

// Runs named steps in order and undoes the ones already run when a later one fails.
class Transaction {
  public:
    explicit Transaction(const PublishHooks& hooks) : hooks_(hooks) {}
    Transaction(const Transaction&) = delete;
    ~Transaction() {
        if (!committed_) rollback();
    }

    // `undo` is registered before `step` runs and must cope with a step that failed half-way.
    Result<void> run(std::string_view name, const std::function<Result<void>()>& step,
                     std::function<void()> undo) {
        if (hooks_.before_step) {
            if (auto ok = hooks_.before_step(name); !ok) return ok;
        }
        undo_.push_back(std::move(undo));
        if (auto ok = step(); !ok) {
            return fail(ok.error().code, std::string(name) + ": " + ok.error().message);
        }
        return {};
    }

    void commit() { committed_ = true; }

  private:
    void rollback() {
        for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
        undo_.clear();
    }

    const PublishHooks& hooks_;
    std::vector<std::function<void()>> undo_;
    bool committed_ = false;
};

bool exists_no_follow(const fs::path& path) {
    std::error_code ec;
    return fs::exists(fs::symlink_status(path, ec));
}

Result<void> write_step(Transaction& tx, std::string_view name, const FileSnapshot& before,
                        const std::string& content) {
    return tx.run(
        name, [&] { return io::write_file_atomic(before.path, content); },
        [before] { restore(before); });
}

struct CommitPlan {
    const RepoPaths& paths;
    const std::string& id;
    const StagedRelease& staged;
    std::string repo_json;
    std::string index_json;
};

Result<void> commit(Transaction& tx, const CommitPlan& plan, const FileSnapshot& old_repo,
                    const FileSnapshot& old_index) {
    const fs::path release_dir = plan.paths.release_dir(plan.id);
    // In .staging, where restore_moved_releases looks after a crash ("<ID>-<8 hex>.old").
    const fs::path old_dir = plan.paths.staging_dir() / (plan.id + "-" + random_suffix() + ".old");
    const bool had_releases_dir = exists_no_follow(plan.paths.releases_dir());

    // An existing folder is either the release being replaced or an unindexed leftover of a
    // crash; both move aside (and come back if this publish fails).
    if (exists_no_follow(release_dir)) {
        auto ok = tx.run(
            "move-old",
            [&]() -> Result<void> {
                std::error_code ec;
                fs::create_directories(old_dir.parent_path(), ec);
                return rename_dir(release_dir, old_dir);
            },
            [release_dir, old_dir] {
                if (exists_no_follow(old_dir) && !exists_no_follow(release_dir)) {
                    (void)rename_dir(old_dir, release_dir);
                }
            });
        if (!ok) return ok;
    }
    auto ok = tx.run(
        "move-new",
        [&]() -> Result<void> {
            std::error_code ec;
            fs::create_directories(plan.paths.releases_dir(), ec);
            if (ec) return io_error("cannot create", plan.paths.releases_dir(), ec);
            return rename_dir(plan.staged.dir, release_dir);
        },
        [release_dir, staged_dir = plan.staged.dir, releases = plan.paths.releases_dir(),
         had_releases_dir] {
            std::error_code ec;
            if (exists_no_follow(release_dir) && !exists_no_follow(staged_dir)) {
                fs::rename(release_dir, staged_dir, ec);
            }
            if (!had_releases_dir) fs::remove(releases, ec);  // only if empty
        });
    if (!ok) return ok;
    if (ok = write_step(tx, "repo.json", old_repo, plan.repo_json); !ok) return ok;
    // index.json is what `serve` and `status` read: writing it is the moment of publication.
    if (ok = write_step(tx, "index.json", old_index, plan.index_json); !ok) return ok;
    tx.commit();

    std::error_code ec;
    fs::remove_all(old_dir, ec);
    if (ec) spdlog::warn("cannot remove {}: {}", old_dir.string(), ec.message());
    return {};
}

Index next_index(Index index, const core::FeedEntry& entry) {
    std::erase_if(index.releases, [&](const auto& e) { return e.id == entry.id; });
    index.releases.push_back(entry);
    std::stable_sort(index.releases.begin(), index.releases.end(),
                     [](const auto& a, const auto& b) { return a.sequence < b.sequence; });
    ++index.generation;
    return index;
}

}  // namespace

Result<RepoState> load_repo_state(const RepoPaths& paths,
                                  const std::optional<std::string>& repo_name) {
    RepoState state;
    auto info = load_repo_info(paths);
    if (info) {
        if (repo_name && *repo_name != info->name) {
            return fail(Errc::invalid_argument,
                        "repository is named '" + info->name + "'; --name-repo cannot rename it");
        }
        state.info = std::move(*info);
    } else if (info.error().code == Errc::not_found) {
        state.is_new = true;
        std::error_code ec;
        const auto root = fs::absolute(paths.root(), ec).lexically_normal();
        std::string folder = root.filename().string();
        if (folder.empty()) folder = root.parent_path().filename().string();
        state.info.name = repo_name.value_or(folder);
        if (auto ok = validate_repo_name(state.info.name); !ok) {
            return fail(Errc::invalid_argument,
                        ok.error().message + " (choose one with --name-repo)");
        }
    } else {
        return forward(info);
    }
    auto index = load_index(paths);
    if (!index) return forward(index);
    state.index = std::move(*index);
    return state;
}

Result<void> check_not_published(const RepoState& state, const std::string& id, bool replace) {
    const bool published = std::any_of(state.index.releases.begin(), state.index.releases.end(),
                                       [&](const auto& e) { return e.id == id; });
    if (published && !replace) {
        return fail(Errc::already_exists,
                    "release " + id + " is already published (use --replace to replace it)");
    }
    return {};
}

Result<void> commit_release(const RepoPaths& paths, const RepoState& state,
                            const StagedRelease& staged, const PublishHooks& hooks) {
    auto old_repo = snapshot(paths.repo_json(), kMaxRepoJsonBytes);
    auto old_index = snapshot(paths.index_json(), kMaxIndexBytes);
    if (!old_repo) return forward(old_repo);
    if (!old_index) return forward(old_index);
    const std::string& id = staged.manifest.id;
    const std::string manifest_sha256 =
        crypto::sha256_hex(crypto::as_bytes(staged.manifest_envelope));
    RepoInfo info = state.info;
    info.sequence = std::max(info.sequence, staged.manifest.sequence);
    const CommitPlan plan{
        paths,
        id,
        staged,
        serialize_repo_info(info),
        serialize_index(
            next_index(state.index, {id, staged.manifest.sequence, manifest_sha256, std::nullopt})),
    };
    Transaction tx(hooks);
    return commit(tx, plan, *old_repo, *old_index);  // rolled back unless committed
}

Result<void> keep_staged(const RepoPaths& paths, const RepoState& state,
                         const StagedRelease& staged) {
    std::error_code ec;
    fs::create_directories(paths.staged_dir(), ec);
    if (ec) return io_error("cannot create", paths.staged_dir(), ec);
    const fs::path dest = paths.staged_release(staged.manifest.id);
    fs::remove_all(dest, ec);  // an earlier staging of the same id is replaced
    if (ec) return io_error("cannot remove", dest, ec);
    if (auto ok = rename_dir(staged.dir, dest); !ok) return ok;
    RepoInfo info = state.info;
    info.sequence = std::max(info.sequence, staged.manifest.sequence);
    return io::write_file_atomic(paths.repo_json(), serialize_repo_info(info));
}

// A publish that crashed between moving a replaced release aside ("move-old") and moving the new
// one in leaves releases/<ID> missing while index.json still lists it: move it back before the
// staging folder is cleared. Old folders are named "<ID>-<8 hex>.old".
void restore_moved_releases(const RepoPaths& paths) {
    std::error_code ec;
    for (fs::directory_iterator it(paths.staging_dir(), ec), end; !ec && it != end;
         it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (!name.ends_with(".old") || name.size() < 14) continue;
        name.resize(name.size() - 4);
        const std::string id = name.substr(0, name.size() - 9);
        if (name[name.size() - 9] != '-' || !core::validate_release_id(id)) continue;
        if (exists_no_follow(paths.release_dir(id))) continue;
        if (auto ok = rename_dir(it->path(), paths.release_dir(id)); ok) {
            spdlog::warn("restored release {} from an interrupted publish", id);
        }
    }
}

void remove_staging(const RepoPaths& paths) {
    std::error_code ec;
    fs::remove_all(paths.staging_dir(), ec);
    if (ec) spdlog::warn("cannot remove {}: {}", paths.staging_dir().string(), ec.message());
}

}  // namespace patchswarm::seeder::publishing
