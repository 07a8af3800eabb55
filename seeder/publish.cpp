#include "seeder/publish.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>
#include <vector>

#include "core/envelope.hpp"
#include "core/feed.hpp"
#include "core/json_strict.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/key_files.hpp"
#include "io/swarm/torrent_file.hpp"
#include "seeder/command_line.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"

namespace patchswarm::seeder {

namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kDay = 86'400;
constexpr std::uint32_t kMaxExpiresDays = 3650;

template <typename T>
std::unexpected<Error> forward(const Result<T>& r) {
    return std::unexpected(r.error());
}

std::unexpected<Error> io_error(const std::string& what, const fs::path& path,
                                const std::error_code& ec) {
    return fail(Errc::io, what + " " + path.string() + ": " + ec.message());
}

// ---- input checks (nothing on disk is touched yet) --------------------------------------------

struct Inputs {
    std::vector<std::string> install_argv;
    std::optional<std::vector<std::string>> verify_argv;
    core::Severity severity = core::Severity::normal;
    core::RebootPolicy reboot = core::RebootPolicy::if_needed;
    std::vector<crypto::KeyPair> release_keys;
    fs::path payload;  // absolute, normalised, no trailing separator
    std::string name;  // torrent name: the payload's file name
    bool single_file = false;
    std::optional<core::Rollout> rollout;
};

Result<void> check_timeout(std::uint32_t seconds, const char* option) {
    if (seconds == 0 || seconds > core::kMaxTimeoutS) {
        return fail(Errc::invalid_argument, std::string(option) + " must be 1.." +
                                                std::to_string(core::kMaxTimeoutS) + " seconds");
    }
    return {};
}

Result<void> check_payload(const PublishRequest& req, Inputs& in) {
    std::string text = req.payload.string();
    while (text.size() > 1 && text.back() == '/') text.pop_back();
    std::error_code ec;
    in.payload = fs::absolute(fs::path(text), ec).lexically_normal();
    if (ec) return io_error("cannot resolve", req.payload, ec);
    in.name = in.payload.filename().string();
    if (in.name.empty() || in.name == "." || in.name == "..") {
        return fail(Errc::invalid_argument, "cannot derive a release name from --payload " + text);
    }
    if (auto ok = core::validate_relative_path(in.name); !ok) {
        return fail(Errc::unsafe_path, "payload name '" + in.name + "': " + ok.error().message);
    }
    const auto status = fs::symlink_status(in.payload, ec);
    if (ec || !fs::exists(status)) {
        return fail(Errc::not_found, "payload " + in.payload.string() + " does not exist");
    }
    if (fs::is_symlink(status)) {
        return fail(Errc::unsafe_path, "payload " + in.payload.string() + " is a symlink");
    }
    if (!fs::is_regular_file(status) && !fs::is_directory(status)) {
        return fail(Errc::unsafe_path,
                    "payload " + in.payload.string() + " is not a regular file or folder");
    }
    in.single_file = fs::is_regular_file(status);
    return {};
}

// Copying a folder that contains the repository would copy the copy, without end.
Result<void> check_payload_outside_repo(const fs::path& repo, const fs::path& payload) {
    std::error_code ec;
    const fs::path r = fs::weakly_canonical(fs::absolute(repo, ec), ec);
    const fs::path p = fs::weakly_canonical(payload, ec);
    if (ec) return io_error("cannot resolve", payload, ec);
    const auto [p_end, r_it] = std::mismatch(p.begin(), p.end(), r.begin(), r.end());
    if (p_end == p.end()) {
        return fail(Errc::invalid_argument, "the payload folder contains the repository");
    }
    return {};
}

Result<void> check_rollout(const PublishRequest& req, std::int64_t now, Inputs& in) {
    if (req.rollout_file) {
        auto text = io::read_file(*req.rollout_file, kMaxRolloutFileBytes);
        if (!text) return fail(Errc::invalid_argument, "--rollout: " + text.error().message);
        auto rollout = select_rollout(*text, req.severity);
        if (!rollout) return fail(Errc::invalid_argument, "--rollout: " + rollout.error().message);
        in.rollout = std::move(*rollout);
    }
    if (req.deadline) {
        auto at = core::parse_time_spec(*req.deadline, now);
        if (!at) return fail(Errc::invalid_argument, "--deadline: " + at.error().message);
        if (!in.rollout) in.rollout.emplace();
        in.rollout->deadline = *at;
    }
    if (in.rollout) {
        const std::int64_t expires = now + static_cast<std::int64_t>(req.expires_days) * kDay;
        if (auto ok = core::validate_rollout(*in.rollout, now, expires); !ok) {
            return fail(Errc::invalid_argument, ok.error().message);
        }
    }
    return {};
}

Result<Inputs> check_inputs(const PublishRequest& req, std::int64_t now) {
    Inputs in;
    if (auto ok = core::validate_release_id(req.id); !ok) {
        return fail(Errc::invalid_argument, "--id '" + req.id + "': " + ok.error().message);
    }
    auto install = split_command_line(req.install);
    if (!install) return fail(Errc::invalid_argument, "--install: " + install.error().message);
    in.install_argv = std::move(*install);
    if (req.verify) {
        auto verify = split_command_line(*req.verify);
        if (!verify) return fail(Errc::invalid_argument, "--verify: " + verify.error().message);
        in.verify_argv = std::move(*verify);
    }
    const auto severity = core::parse_severity(req.severity);
    if (!severity) {
        return fail(Errc::invalid_argument,
                    "--severity must be low, normal, important, critical or emergency");
    }
    in.severity = *severity;
    const auto reboot = core::parse_reboot_policy(req.reboot);
    if (!reboot)
        return fail(Errc::invalid_argument, "--reboot must be required, none or if_needed");
    in.reboot = *reboot;
    if (auto ok = check_timeout(req.install_timeout_s, "--timeout"); !ok) return forward(ok);
    if (auto ok = check_timeout(req.verify_timeout_s, "--verify-timeout"); !ok) return forward(ok);
    if (req.expires_days == 0 || req.expires_days > kMaxExpiresDays) {
        return fail(Errc::invalid_argument,
                    "--expires-days must be 1.." + std::to_string(kMaxExpiresDays));
    }
    if (req.repo_name) {
        if (auto ok = validate_repo_name(*req.repo_name); !ok) {
            return fail(Errc::invalid_argument, "--name-repo: " + ok.error().message);
        }
    }
    auto keys = load_secret_keys(req.release_keys, "--key");
    if (!keys) return forward(keys);
    if (keys->empty() && !req.stage) {
        return fail(Errc::invalid_argument, "--key is required (or --stage to sign later)");
    }
    in.release_keys = std::move(*keys);
    if (auto ok = check_rollout(req, now, in); !ok) return forward(ok);
    if (auto ok = check_payload(req, in); !ok) return forward(ok);
    if (auto ok = check_payload_outside_repo(req.repo, in.payload); !ok) return forward(ok);
    return in;
}

// ---- copying the payload ------------------------------------------------------------------

// The copy, not the caller's folder, is what gets hashed, torrented and seeded, so later edits
// to the source cannot change a signed release.
class PayloadCopier {
  public:
    // Files copied, by path relative to the release folder (see docs/PROTOCOL.md).
    const std::map<std::string, std::uint64_t>& files() const { return files_; }

    Result<void> copy(const fs::path& src, const fs::path& dst, const std::string& name,
                      bool single_file) {
        if (single_file) return copy_file(src, dst, name);
        return copy_tree(src, dst, "", 0);
    }

  private:
    Result<void> copy_file(const fs::path& src, const fs::path& dst, const std::string& rel) {
        std::error_code ec;
        const auto size = fs::file_size(src, ec);
        if (ec) return io_error("cannot stat", src, ec);
        total_ += size;
        if (total_ > core::kMaxPayloadBytes) {
            return fail(Errc::too_large, "payload is larger than the 64 GiB a release may carry");
        }
        if (files_.size() >= core::kMaxFiles) {
            return fail(Errc::too_large,
                        "payload has more than " + std::to_string(core::kMaxFiles) + " files");
        }
        fs::copy_file(src, dst, fs::copy_options::none, ec);
        if (ec) return io_error("cannot copy", src, ec);
        // Keep the executable bits the install needs, drop set-id bits and write access for
        // others: the copy is part of a signed release.
        const auto mode = fs::status(src, ec).permissions();
        if (ec) return io_error("cannot stat", src, ec);
        fs::permissions(
            dst,
            mode & (fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                    fs::perms::others_read | fs::perms::others_exec),
            ec);
        if (ec) return io_error("cannot set permissions of", dst, ec);
        files_.emplace(rel, size);
        return {};
    }

    Result<void> copy_tree(const fs::path& src, const fs::path& dst, const std::string& prefix,
                           std::size_t depth) {
        if (depth >= core::kMaxPathDepth) {
            return fail(Errc::too_large, "payload folder is nested deeper than " +
                                             std::to_string(core::kMaxPathDepth) + " levels");
        }
        std::error_code ec;
        fs::create_directory(dst, ec);
        if (ec) return io_error("cannot create", dst, ec);
        for (fs::directory_iterator it(src, ec), end; !ec && it != end; it.increment(ec)) {
            const std::string leaf = it->path().filename().string();
            const std::string rel = prefix.empty() ? leaf : prefix + "/" + leaf;
            if (auto ok = core::validate_relative_path(rel); !ok) {
                return fail(Errc::unsafe_path, "payload path '" + rel + "': " + ok.error().message);
            }
            const auto status = it->symlink_status(ec);
            if (ec) return io_error("cannot stat", it->path(), ec);
            if (fs::is_symlink(status)) {
                return fail(Errc::unsafe_path, "payload contains a symlink: " + rel);
            }
            Result<void> ok;
            if (fs::is_directory(status)) {
                ok = copy_tree(it->path(), dst / leaf, rel, depth + 1);
            } else if (fs::is_regular_file(status)) {
                ok = copy_file(it->path(), dst / leaf, rel);
            } else {
                return fail(Errc::unsafe_path, "payload contains a special file: " + rel);
            }
            if (!ok) return ok;
        }
        if (ec) return io_error("cannot list", src, ec);
        return {};
    }

    std::map<std::string, std::uint64_t> files_;
    std::uint64_t total_ = 0;
};

// ---- building the release in staging ------------------------------------------------------

struct StagedRelease {
    fs::path dir;  // repo/.staging/<id>-<random>: manifest.json, release.torrent, payload/
    std::string manifest_envelope;
    core::Manifest manifest;
};

std::string random_suffix() {
    std::random_device rd;
    std::uniform_int_distribution<std::uint32_t> dist;
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", dist(rd));
    return buf;
}

// Every file the torrent carries must be one we copied (same size), and every non-empty file we
// copied must be in the torrent: the manifest lists the torrent's files.
Result<std::vector<core::FileEntry>> hash_torrent_files(const io::swarm::TorrentSummary& torrent,
                                                        const PayloadCopier& copier,
                                                        const fs::path& payload_root) {
    std::vector<core::FileEntry> entries;
    for (const auto& file : torrent.files) {
        const auto it = copier.files().find(file.path);
        if (it == copier.files().end() || it->second != file.size) {
            return fail(Errc::internal, "torrent lists " + file.path + " unlike the payload");
        }
        const fs::path on_disk = torrent.single_file ? payload_root / file.path
                                                     : payload_root / torrent.name / file.path;
        auto digest = io::sha256_file(on_disk, core::kMaxPayloadBytes);
        if (!digest) return fail(digest.error().code, file.path + ": " + digest.error().message);
        entries.push_back({file.path, file.size, crypto::to_hex(*digest)});
    }
    for (const auto& [path, size] : copier.files()) {
        const bool listed = std::any_of(torrent.files.begin(), torrent.files.end(),
                                        [&](const auto& f) { return f.path == path; });
        if (listed) continue;
        if (size != 0) return fail(Errc::internal, "torrent does not carry " + path);
        spdlog::warn("empty file {} is not carried by the torrent and will not be installed", path);
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.path < b.path; });
    return entries;
}

core::Manifest build_manifest(const PublishRequest& req, const Inputs& in,
                              const std::string& repository, std::uint64_t sequence,
                              std::int64_t now, const io::swarm::TorrentSummary& torrent,
                              std::vector<core::FileEntry> files) {
    core::Manifest m;
    m.repository = repository;
    m.id = req.id;
    m.sequence = sequence;
    m.created = now;
    m.expires = now + static_cast<std::int64_t>(req.expires_days) * kDay;
    m.severity = in.severity;
    m.name = torrent.name;
    m.files = std::move(files);
    m.infohash_v2 = torrent.infohash_v2;
    m.install = core::CommandLine{in.install_argv, req.install_timeout_s};
    if (in.verify_argv) m.verify = core::CommandLine{*in.verify_argv, req.verify_timeout_s};
    m.reboot = in.reboot;
    m.rollout = in.rollout;
    return m;
}

// libtorrent makes a v2 torrent of a folder holding exactly one file a single-file torrent
// named after that file. The seeder's copy must then have the file where the torrent puts it:
// payload/<file> instead of payload/<folder>/<file>. The release folder endpoints install from
// looks the same either way (it holds <file>), so this is allowed only when the file sits
// directly in the folder; a lone nested file would lose its sub-folders.
Result<void> flatten_single_file_folder(const fs::path& payload_root, const std::string& folder,
                                        const std::string& file) {
    std::error_code ec;
    const auto source = fs::symlink_status(payload_root / folder / file, ec);
    if (ec || !fs::is_regular_file(source)) {
        return fail(Errc::invalid_argument,
                    "a folder payload with a single file must hold it directly (no sub-folders); "
                    "publish the file itself instead");
    }
    // The file may have the folder's name, so the folder moves aside first.
    const fs::path aside = payload_root / (".folder-" + file);
    fs::rename(payload_root / folder, aside, ec);
    if (!ec) fs::rename(aside / file, payload_root / file, ec);
    if (!ec) fs::remove(aside, ec);
    if (ec) return io_error("cannot rearrange", payload_root, ec);
    return {};
}

Result<StagedRelease> stage_release(const RepoPaths& paths, const PublishRequest& req,
                                    const Inputs& in, const std::string& repository,
                                    std::uint64_t sequence, std::int64_t now) {
    StagedRelease staged;
    staged.dir = paths.staging_dir() / (req.id + "-" + random_suffix());
    std::error_code ec;
    fs::create_directories(staged.dir / "payload", ec);
    if (ec) return io_error("cannot create", staged.dir, ec);

    const fs::path payload_root = staged.dir / "payload";
    PayloadCopier copier;
    if (auto ok = copier.copy(in.payload, payload_root / in.name, in.name, in.single_file); !ok) {
        return forward(ok);
    }
    if (copier.files().empty()) return fail(Errc::invalid_argument, "payload has no files");

    // A repository with a fleet CA publishes SSL torrents: only enrolled endpoints (holding a
    // certificate from that CA) can join the swarm. The torrent, and so the CA, is bound by the
    // signed manifest's info-hash.
    std::string fleet_ca;
    if (auto ca = io::read_file(fleet_ca_cert(paths), io::x509::kMaxPemBytes); ca) {
        fleet_ca = std::move(*ca);
    } else if (ca.error().code != Errc::not_found) {
        return fail(ca.error().code, "fleet CA: " + ca.error().message);
    }
    auto torrent = io::swarm::create_torrent(payload_root / in.name, fleet_ca);
    if (!torrent) return fail(torrent.error().code, "torrent: " + torrent.error().message);
    if (!in.single_file && torrent->single_file) {
        if (auto ok = flatten_single_file_folder(payload_root, in.name, torrent->name); !ok) {
            return forward(ok);
        }
    }
    auto files = hash_torrent_files(*torrent, copier, payload_root);
    if (!files) return forward(files);

    staged.manifest =
        build_manifest(req, in, repository, sequence, now, *torrent, std::move(*files));
    const std::string manifest_bytes = core::serialize_manifest(staged.manifest);
    // Whatever endpoints would refuse must fail here, before anything is signed.
    if (auto valid = core::validate_manifest(staged.manifest); !valid) {
        return fail(Errc::invalid_argument, "manifest would be invalid: " + valid.error().message);
    }
    if (auto parsed = core::parse_manifest(manifest_bytes); !parsed || *parsed != staged.manifest) {
        return fail(Errc::internal, "manifest does not survive its own round trip");
    }
    staged.manifest_envelope = core::serialize_envelope(core::sign_envelope(
        core::payload_type::manifest, crypto::as_bytes(manifest_bytes), in.release_keys));

    if (auto ok = io::write_file_atomic(staged.dir / "manifest.json", staged.manifest_envelope);
        !ok) {
        return forward(ok);
    }
    const std::string_view torrent_bytes(reinterpret_cast<const char*>(torrent->bytes.data()),
                                         torrent->bytes.size());
    if (auto ok = io::write_file_atomic(staged.dir / "release.torrent", torrent_bytes); !ok) {
        return forward(ok);
    }
    return staged;
}

// ---- repository state -----------------------------------------------------------------------

struct RepoState {
    RepoInfo info;
    Index index;
    bool is_new = false;
};

Result<RepoState> load_state(const RepoPaths& paths, const std::optional<std::string>& repo_name) {
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

// Endpoints count only the release keys their root names; a signature by any other key would be
// ignored by every one of them, so catch that mistake here.
Result<void> check_release_keys(const CurrentRoot& root, std::span<const crypto::KeyPair> keys) {
    const auto& ids = root.doc.release.keyids;
    for (const auto& key : keys) {
        const std::string id = crypto::key_id(key.public_key);
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
            return fail(Errc::bad_signature, "--key " + id.substr(0, 16) +
                                                 "… is not a release key of root version " +
                                                 std::to_string(root.version));
        }
    }
    return {};
}

// Valid signatures by distinct release keys, and how many are needed.
std::pair<std::size_t, std::size_t> release_signatures(const CurrentRoot& root,
                                                       const std::string& envelope_json) {
    const auto role = core::key_set(root.doc, root.doc.release);
    auto env = core::parse_envelope(envelope_json, core::kMaxManifestBytes * 2);
    std::size_t n = 0;
    if (env) {
        for (const auto& key : role.keys) {
            const crypto::PublicKey one[] = {key};
            if (core::verify_envelope(*env, core::payload_type::manifest, one, 1)) ++n;
        }
    }
    return {n, role.threshold};
}

std::string threshold_message(std::size_t have, std::size_t need, std::uint64_t version) {
    return "the manifest carries " + std::to_string(have) + " valid release signature(s); root " +
           "version " + std::to_string(version) + " requires " + std::to_string(need);
}

// ---- commit with undo -------------------------------------------------------------------------

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

PublishResult result_of(const StagedRelease& staged) {
    PublishResult result;
    result.id = staged.manifest.id;
    result.sequence = staged.manifest.sequence;
    result.infohash_v2 = staged.manifest.infohash_v2;
    result.manifest_sha256 = crypto::sha256_hex(crypto::as_bytes(staged.manifest_envelope));
    result.size = staged.manifest.total_size();
    result.files = staged.manifest.files.size();
    return result;
}

// Moves a built release into releases/ and indexes it: the moment of publication. On failure
// every step already done is undone.
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

// `publish --stage`: keeps the built release in staged/<ID> and reserves its sequence in
// repo.json, so a publish before the commit cannot take the same number.
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

Result<void> check_not_published(const RepoState& state, const std::string& id, bool replace) {
    const bool published = std::any_of(state.index.releases.begin(), state.index.releases.end(),
                                       [&](const auto& e) { return e.id == id; });
    if (published && !replace) {
        return fail(Errc::already_exists,
                    "release " + id + " is already published (use --replace to replace it)");
    }
    return {};
}

// Everything after the lock: the repository is ours until this returns.
Result<PublishResult> publish_locked(const RepoPaths& paths, const PublishRequest& req,
                                     const Inputs& in, std::int64_t now,
                                     const PublishHooks& hooks) {
    auto root = load_current_root(paths);
    if (!root) return forward(root);
    if (auto ok = check_release_keys(*root, in.release_keys); !ok) return forward(ok);
    auto state = load_state(paths, req.repo_name);
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
    auto state = load_state(paths, std::nullopt);
    if (!state) return forward(state);
    if (auto ok = check_not_published(*state, req.id, req.replace); !ok) return forward(ok);

    const fs::path dir = paths.staged_release(req.id);
    const std::size_t max_bytes = core::kMaxManifestBytes * 2;
    auto text = io::read_file(dir / "manifest.json", max_bytes);
    if (!text) {
        if (text.error().code == Errc::not_found) {
            return fail(Errc::not_found, "no staged release " + req.id + " (publish --stage)");
        }
        return forward(text);
    }
    auto env = core::parse_envelope(*text, max_bytes);
    if (!env) return fail(env.error().code, "staged manifest: " + env.error().message);
    auto m = core::parse_manifest(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    if (!m) return fail(m.error().code, "staged manifest: " + m.error().message);
    if (m->id != req.id) return fail(Errc::malformed, "staged manifest names " + m->id);

    for (const auto& key : keys) core::add_signature(*env, key);
    const auto release = core::key_set(root->doc, root->doc.release);
    for (const auto& file : req.merge) {
        auto copy = io::read_file(file, max_bytes);
        if (!copy) return fail(copy.error().code, file.string() + ": " + copy.error().message);
        auto other = core::parse_envelope(*copy, max_bytes);
        if (!other) return fail(other.error().code, file.string() + ": " + other.error().message);
        auto added = merge_signatures(*env, *other, release.keys);
        if (!added) return fail(added.error().code, file.string() + ": " + added.error().message);
    }
    StagedRelease staged{dir, core::serialize_envelope(*env), std::move(*m)};
    // Signatures gathered so far are kept even if the threshold is not met yet.
    if (auto ok = io::write_file_atomic(dir / "manifest.json", staged.manifest_envelope); !ok) {
        return forward(ok);
    }
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

Result<core::Rollout> select_rollout(std::string_view policy_json, std::string_view severity) {
    static constexpr std::array<std::string_view, 6> kKeys = {"low",      "normal",    "important",
                                                              "critical", "emergency", "default"};
    auto doc = core::json_strict::parse(policy_json, "rollout");
    if (!doc) return fail(Errc::invalid_argument, doc.error().message);
    if (!doc->is_object()) return fail(Errc::invalid_argument, "rollout: expected an object");
    const bool per_severity = std::any_of(kKeys.begin(), kKeys.end(), [&](std::string_view k) {
        return doc->contains(std::string(k));
    });
    // A policy file may leave out an empty "rings" or "windows" (the manifest always has both).
    const auto parse_policy = [](core::json_strict::Json policy,
                                 const std::string& where) -> Result<core::Rollout> {
        if (policy.is_object()) {
            if (!policy.contains("rings")) policy["rings"] = core::json_strict::Json::array();
            if (!policy.contains("windows")) policy["windows"] = core::json_strict::Json::array();
        }
        auto r = core::parse_rollout(core::json_strict::dump(policy));
        if (!r) return fail(Errc::invalid_argument, where + r.error().message);
        return r;
    };
    if (!per_severity) return parse_policy(*doc, "");
    // One policy per severity: the emergency schedule is data, chosen by --severity.
    for (const auto& item : doc->items()) {
        if (std::find(kKeys.begin(), kKeys.end(), item.key()) == kKeys.end()) {
            return fail(Errc::invalid_argument,
                        "rollout." + item.key() +
                            ": unknown field (a per-severity policy has low, normal, important, "
                            "critical, emergency and default)");
        }
    }
    std::string key(severity);
    if (!doc->contains(key)) key = "default";
    if (!doc->contains(key)) {
        return fail(Errc::invalid_argument,
                    "rollout: no policy for severity " + std::string(severity) + " and no default");
    }
    return parse_policy((*doc)[key], "[" + key + "] ");
}

std::string to_json_line(const PublishResult& r) {
    const nlohmann::ordered_json doc = {{"id", r.id},
                                        {"sequence", r.sequence},
                                        {"infohash_v2", r.infohash_v2},
                                        {"manifest_sha256", r.manifest_sha256},
                                        {"size", r.size},
                                        {"files", r.files},
                                        {"staged", r.staged},
                                        {"signatures", {r.signatures, r.threshold}}};
    return doc.dump();
}

Result<PublishResult> publish(const PublishRequest& req, std::int64_t now_unix,
                              const PublishHooks& hooks) {
    auto inputs = check_inputs(req, now_unix);
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
