#include "seeder/root_admin.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <type_traits>

#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
#include "core/trust.hpp"
#include "io/fs.hpp"
#include "io/key_files.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder {

namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kDay = 86'400;

template <typename T>
std::unexpected<Error> forward(const Result<T>& r) {
    return std::unexpected(r.error());
}

std::string_view as_text(const crypto::Bytes& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

bool exists_no_follow(const fs::path& path) {
    std::error_code ec;
    return fs::exists(fs::symlink_status(path, ec));
}

// Loads every key file with `load` (public or secret); the first failure names the option.
template <typename Loader>
auto load_keys(std::span<const fs::path> files, std::string_view option, Loader load)
    -> Result<std::vector<typename std::invoke_result_t<Loader, const fs::path&>::value_type>> {
    std::vector<typename std::invoke_result_t<Loader, const fs::path&>::value_type> keys;
    for (const auto& file : files) {
        auto key = load(file);
        if (!key) return fail(key.error().code, std::string(option) + ": " + key.error().message);
        keys.push_back(*key);
    }
    return keys;
}

Result<std::vector<crypto::PublicKey>> load_public_keys(std::span<const fs::path> files,
                                                        std::string_view option) {
    return load_keys(files, option, [](const fs::path& f) { return io::load_public_key(f); });
}

Result<void> check_expires_days(std::uint32_t days) {
    if (days == 0 || days > kMaxRootExpiresDays) {
        return fail(Errc::invalid_argument,
                    "--expires-days must be 1.." + std::to_string(kMaxRootExpiresDays));
    }
    return {};
}

// Valid signatures in `env` by distinct keys of `role` (each key once).
std::size_t count_signed(const core::Envelope& env, const core::KeySet& role) {
    std::size_t n = 0;
    for (const auto& key : role.keys) {
        const crypto::PublicKey one[] = {key};
        if (core::verify_envelope(env, core::payload_type::root, one, 1)) ++n;
    }
    return n;
}

struct Staged {
    core::Envelope env;
    core::RootDocument doc;
    std::optional<core::RootDocument> previous;  // the committed version before it
};

RootStatus status_of(const Staged& s, const RepoPaths& paths) {
    RootStatus st;
    st.version = s.doc.version;
    const auto own = core::key_set(s.doc, s.doc.root);
    st.signed_by_own = count_signed(s.env, own);
    st.own_threshold = own.threshold;
    if (s.previous) {
        const auto prev = core::key_set(*s.previous, s.previous->root);
        st.signed_by_previous = count_signed(s.env, prev);
        st.previous_threshold = prev.threshold;
    }
    st.path = paths.staged_root();
    return st;
}

// The keys that may sign a staged root: its own root keys and the previous version's.
std::vector<crypto::PublicKey> root_signers(const Staged& s) {
    auto keys = core::key_set(s.doc, s.doc.root).keys;
    if (s.previous) {
        const auto prev = core::key_set(*s.previous, s.previous->root).keys;
        keys.insert(keys.end(), prev.begin(), prev.end());
    }
    return keys;
}

Result<void> add_signatures(Staged& s, std::span<const crypto::KeyPair> keys) {
    const auto allowed = root_signers(s);
    for (const auto& key : keys) {
        if (std::find(allowed.begin(), allowed.end(), key.public_key) == allowed.end()) {
            return fail(Errc::bad_signature,
                        "key " + crypto::key_id(key.public_key) + " is not a root key of version " +
                            std::to_string(s.doc.version) + " or of the version before it");
        }
        core::add_signature(s.env, key);
    }
    return {};
}

// Commits the staged root when both thresholds are met; otherwise keeps it staged.
Result<RootStatus> save_or_commit(const RepoPaths& paths, const Staged& s) {
    RootStatus st = status_of(s, paths);
    const std::string bytes = core::serialize_envelope(s.env);
    const bool ready = st.signed_by_own >= st.own_threshold &&
                       (!s.previous || st.signed_by_previous >= st.previous_threshold);
    if (!ready) {
        if (auto ok = io::write_file_atomic(paths.staged_root(), bytes); !ok) return forward(ok);
        return st;
    }
    // The endpoint's own check, so what is committed is exactly what endpoints accept.
    auto check =
        s.previous ? core::verify_next_root(bytes, *s.previous) : core::verify_pinned_root(bytes);
    if (!check)
        return fail(Errc::internal, "staged root fails its own check: " + check.error().message);
    const fs::path target = paths.root_version(s.doc.version);
    if (exists_no_follow(target)) {
        return fail(Errc::already_exists, target.string() + " already exists");
    }
    // The new feed key (if this version rotates it) must be in place before the root that names
    // it is served, so `serve` can switch keys as soon as it sees the new root; if the root then
    // cannot be written, the keys go back.
    struct Move {
        fs::path from, to;
    };
    std::vector<Move> moved;
    auto undo = [&] {
        std::error_code ec;
        for (auto it = moved.rbegin(); it != moved.rend(); ++it) fs::rename(it->to, it->from, ec);
    };
    if (exists_no_follow(paths.feed_next_secret_key())) {
        auto next = io::load_secret_key(paths.feed_next_secret_key());
        if (!next) return fail(next.error().code, "feed-next.key: " + next.error().message);
        const std::string id = crypto::key_id(next->public_key);
        const auto& feed_ids = s.doc.feed.keyids;
        if (std::find(feed_ids.begin(), feed_ids.end(), id) != feed_ids.end()) {
            const std::string retired = "feed-retired-v" + std::to_string(s.doc.version - 1);
            const Move moves[] = {
                {paths.feed_secret_key(), paths.keys_dir() / (retired + ".key")},
                {paths.feed_public_key(), paths.keys_dir() / (retired + ".pub")},
                {paths.feed_next_secret_key(), paths.feed_secret_key()},
                {paths.feed_next_public_key(), paths.feed_public_key()},
            };
            for (const auto& m : moves) {
                std::error_code ec;
                fs::rename(m.from, m.to, ec);
                if (ec) {
                    undo();
                    return fail(Errc::io, "cannot install the new feed key: " + m.from.string() +
                                              ": " + ec.message());
                }
                moved.push_back(m);
            }
        }
    }
    if (auto ok = io::write_file_atomic(target, bytes); !ok) {
        undo();
        return forward(ok);
    }
    std::error_code ec;
    fs::remove(paths.staged_root(), ec);
    spdlog::info("root version {} committed: {}", s.doc.version, target.string());
    st.committed = true;
    st.path = target;
    return st;
}

Result<Staged> load_staged(const RepoPaths& paths) {
    auto text = io::read_file(paths.staged_root(), core::kMaxRootEnvelopeBytes);
    if (!text) {
        if (text.error().code == Errc::not_found) {
            return fail(Errc::not_found, "no root version is staged (root init / root rotate)");
        }
        return forward(text);
    }
    auto env = core::parse_envelope(*text, core::kMaxRootEnvelopeBytes);
    if (!env) return fail(env.error().code, "root/staged.json: " + env.error().message);
    if (env->payload_type != core::payload_type::root) {
        return fail(Errc::malformed, "root/staged.json is not a root document");
    }
    auto doc = core::parse_root(as_text(env->payload));
    if (!doc) return fail(doc.error().code, "root/staged.json: " + doc.error().message);
    Staged s{std::move(*env), std::move(*doc), std::nullopt};
    if (s.doc.version > 1) {
        auto current = load_current_root(paths);
        if (!current) return forward(current);
        if (current->version + 1 != s.doc.version) {
            return fail(Errc::malformed, "staged root version " + std::to_string(s.doc.version) +
                                             " does not follow committed version " +
                                             std::to_string(current->version));
        }
        s.previous = std::move(current->doc);
    }
    return s;
}

Staged stage(core::RootDocument doc, std::optional<core::RootDocument> previous) {
    const std::string bytes = core::serialize_root(doc);
    return Staged{core::sign_envelope(core::payload_type::root, crypto::as_bytes(bytes), {}),
                  std::move(doc), std::move(previous)};
}

Result<core::RoleKeys> role_from(core::RootDocument& doc, std::span<const fs::path> files,
                                 std::uint32_t threshold, std::string_view option) {
    auto keys = load_public_keys(files, option);
    if (!keys) return forward(keys);
    if (keys->empty()) return fail(Errc::invalid_argument, std::string(option) + " is required");
    return core::add_role_keys(doc, *keys, threshold);
}

// Keeps only the keys some role still names (a rotation may drop keys).
void prune_keys(core::RootDocument& doc) {
    std::set<std::string> used;
    for (const auto* role : {&doc.root, &doc.release, &doc.feed}) {
        used.insert(role->keyids.begin(), role->keyids.end());
    }
    std::erase_if(doc.keys, [&](const auto& item) { return !used.contains(item.first); });
}

Result<crypto::PublicKey> ensure_feed_key(const RepoPaths& paths) {
    if (!exists_no_follow(paths.feed_secret_key())) {
        std::error_code ec;
        fs::create_directories(paths.keys_dir(), ec);
        if (ec) return fail(Errc::io, "cannot create " + paths.keys_dir().string());
        fs::permissions(paths.keys_dir(), fs::perms::owner_all, ec);
        if (auto ok = io::write_keypair(paths.feed_key_base(), crypto::generate_keypair()); !ok) {
            return forward(ok);
        }
    }
    auto key = io::load_secret_key(paths.feed_secret_key());
    if (!key) return fail(key.error().code, "feed key: " + key.error().message);
    return key->public_key;
}

Result<void> ensure_repo_json(const RepoPaths& paths, const std::optional<std::string>& name) {
    auto info = load_repo_info(paths);
    if (info) {
        if (name && *name != info->name) {
            return fail(Errc::invalid_argument,
                        "repository is named '" + info->name + "'; --name-repo cannot rename it");
        }
        return {};
    }
    if (info.error().code != Errc::not_found) return forward(info);
    std::error_code ec;
    const auto root = fs::absolute(paths.root(), ec).lexically_normal();
    std::string folder = root.filename().string();
    if (folder.empty()) folder = root.parent_path().filename().string();
    RepoInfo fresh;
    fresh.name = name.value_or(folder);
    if (auto ok = validate_repo_name(fresh.name); !ok) {
        return fail(Errc::invalid_argument, ok.error().message + " (choose one with --name-repo)");
    }
    return io::write_file_atomic(paths.repo_json(), serialize_repo_info(fresh));
}

std::string describe_manifest(const core::Manifest& m) {
    return "manifest " + m.repository + "/" + m.id + " sequence " + std::to_string(m.sequence) +
           ", " + std::to_string(m.files.size()) + " file(s), " + std::to_string(m.total_size()) +
           " bytes, infohash " + m.infohash_v2.substr(0, 16) + "…, expires " +
           std::to_string(m.expires);
}

std::string describe_root(const core::RootDocument& r) {
    auto role = [](const char* name, const core::RoleKeys& k) {
        return std::string(name) + " " + std::to_string(k.threshold) + " of " +
               std::to_string(k.keyids.size());
    };
    return "root version " + std::to_string(r.version) + " (" + role("root", r.root) + ", " +
           role("release", r.release) + ", " + role("feed", r.feed) + "), expires " +
           std::to_string(r.expires);
}

}  // namespace

std::string to_json_line(const RootStatus& st) {
    const nlohmann::ordered_json doc = {
        {"version", st.version},
        {"committed", st.committed},
        {"path", st.path.string()},
        {"signatures",
         {{"previous", {st.signed_by_previous, st.previous_threshold}},
          {"own", {st.signed_by_own, st.own_threshold}}}}};
    return doc.dump();
}

Result<std::vector<crypto::KeyPair>> load_secret_keys(std::span<const fs::path> files,
                                                      std::string_view option) {
    return load_keys(files, option, [](const fs::path& f) { return io::load_secret_key(f); });
}

Result<std::size_t> merge_signatures(core::Envelope& into, const core::Envelope& from,
                                     std::span<const crypto::PublicKey> allowed) {
    if (from.payload_type != into.payload_type || from.payload != into.payload) {
        return fail(Errc::malformed, "the signed copy holds another document");
    }
    std::size_t added = 0;
    const crypto::Bytes pae = core::pre_auth_encoding(into.payload_type, into.payload);
    for (const auto& entry : from.signatures) {
        const bool present = std::any_of(into.signatures.begin(), into.signatures.end(),
                                         [&](const auto& e) { return e.keyid == entry.keyid; });
        if (present) continue;
        // Only signatures that count are copied: junk must not use up the envelope's room.
        const bool valid = std::any_of(allowed.begin(), allowed.end(), [&](const auto& key) {
            return crypto::key_id(key) == entry.keyid &&
                   crypto::verify_detached(pae, entry.sig, key);
        });
        if (!valid) continue;
        if (into.signatures.size() >= core::kMaxSignatures) {
            return fail(Errc::too_large, "envelope already carries the maximum of signatures");
        }
        into.signatures.push_back(entry);
        ++added;
    }
    return added;
}

Result<RootStatus> root_init(const RootInitRequest& req, std::int64_t now) {
    if (auto ok = check_expires_days(req.expires_days); !ok) return forward(ok);
    auto signers = load_secret_keys(req.sign_keys, "--key");
    if (!signers) return forward(signers);
    const RepoPaths paths(req.repo);
    auto lock = RepoLock::acquire(paths);
    if (!lock) return forward(lock);
    if (auto current = load_current_root(paths);
        current || current.error().code != Errc::not_found) {
        if (current) {
            return fail(Errc::already_exists, "the repository already has root version " +
                                                  std::to_string(current->version) +
                                                  " (use root rotate)");
        }
        return forward(current);
    }

    core::RootDocument doc;
    doc.version = 1;
    doc.expires = now + static_cast<std::int64_t>(req.expires_days) * kDay;
    auto root = role_from(doc, req.root_public_keys, req.root_threshold, "--root-pub");
    if (!root) return forward(root);
    doc.root = *root;
    auto release = role_from(doc, req.release_public_keys, req.release_threshold, "--release-pub");
    if (!release) return forward(release);
    doc.release = *release;
    crypto::PublicKey feed{};
    if (req.feed_public_key) {
        auto key = io::load_public_key(*req.feed_public_key);
        if (!key) return fail(key.error().code, "--feed-pub: " + key.error().message);
        feed = *key;
    } else {
        auto key = ensure_feed_key(paths);
        if (!key) return forward(key);
        feed = *key;
    }
    const crypto::PublicKey feed_keys[] = {feed};
    doc.feed = core::add_role_keys(doc, feed_keys, 1);
    if (auto ok = core::validate_root(doc); !ok) {
        return fail(Errc::invalid_argument, ok.error().message);
    }
    if (auto ok = ensure_repo_json(paths, req.repo_name); !ok) return forward(ok);
    std::error_code ec;
    fs::create_directories(paths.roots_dir(), ec);
    if (ec) return fail(Errc::io, "cannot create " + paths.roots_dir().string());

    Staged s = stage(std::move(doc), std::nullopt);
    if (auto ok = add_signatures(s, *signers); !ok) return forward(ok);
    return save_or_commit(paths, s);
}

Result<RootStatus> root_rotate(const RootRotateRequest& req, std::int64_t now) {
    if (auto ok = check_expires_days(req.expires_days); !ok) return forward(ok);
    auto signers = load_secret_keys(req.sign_keys, "--key");
    if (!signers) return forward(signers);
    const RepoPaths paths(req.repo);
    auto lock = RepoLock::acquire(paths);
    if (!lock) return forward(lock);
    auto current = load_current_root(paths);
    if (!current) return forward(current);

    core::RootDocument doc = current->doc;
    doc.version = current->version + 1;
    doc.expires = now + static_cast<std::int64_t>(req.expires_days) * kDay;
    if (!req.root_public_keys.empty()) {
        const std::uint32_t threshold = req.root_threshold.value_or(doc.root.threshold);
        doc.root = {};
        auto role = role_from(doc, req.root_public_keys, threshold, "--root-pub");
        if (!role) return forward(role);
        doc.root = *role;
    } else if (req.root_threshold) {
        doc.root.threshold = *req.root_threshold;
    }
    if (!req.release_public_keys.empty()) {
        auto role =
            role_from(doc, req.release_public_keys,
                      req.release_threshold.value_or(doc.release.threshold), "--release-pub");
        if (!role) return forward(role);
        doc.release = *role;
    } else if (req.release_threshold) {
        doc.release.threshold = *req.release_threshold;
    }
    if (req.new_feed_key) {
        std::error_code ec;
        fs::remove(paths.feed_next_secret_key(), ec);
        fs::remove(paths.feed_next_public_key(), ec);
        const crypto::KeyPair next = crypto::generate_keypair();
        if (auto ok = io::write_keypair(paths.feed_next_key_base(), next); !ok) {
            return forward(ok);
        }
        const crypto::PublicKey feed_keys[] = {next.public_key};
        doc.feed = core::add_role_keys(doc, feed_keys, 1);
    }
    prune_keys(doc);
    if (auto ok = core::validate_root(doc); !ok) {
        return fail(Errc::invalid_argument, ok.error().message);
    }
    Staged s = stage(std::move(doc), std::move(current->doc));
    if (auto ok = add_signatures(s, *signers); !ok) return forward(ok);
    return save_or_commit(paths, s);
}

Result<RootStatus> root_sign(const RootSignRequest& req) {
    auto signers = load_secret_keys(req.sign_keys, "--key");
    if (!signers) return forward(signers);
    const RepoPaths paths(req.repo);
    auto lock = RepoLock::acquire(paths);
    if (!lock) return forward(lock);
    auto s = load_staged(paths);
    if (!s) return forward(s);
    if (auto ok = add_signatures(*s, *signers); !ok) return forward(ok);
    const auto allowed = root_signers(*s);
    for (const auto& file : req.merge) {
        auto text = io::read_file(file, core::kMaxRootEnvelopeBytes);
        if (!text) return fail(text.error().code, file.string() + ": " + text.error().message);
        auto env = core::parse_envelope(*text, core::kMaxRootEnvelopeBytes);
        if (!env) return fail(env.error().code, file.string() + ": " + env.error().message);
        auto added = merge_signatures(s->env, *env, allowed);
        if (!added) return fail(added.error().code, file.string() + ": " + added.error().message);
    }
    return save_or_commit(paths, *s);
}

Result<std::string> sign_envelope_file(const fs::path& file, const fs::path& key_file) {
    auto key = io::load_secret_key(key_file);
    if (!key) return fail(key.error().code, "--key: " + key.error().message);
    const std::size_t max_bytes = core::kMaxManifestBytes * 2;
    auto text = io::read_file(file, max_bytes);
    if (!text) return fail(text.error().code, file.string() + ": " + text.error().message);
    auto env = core::parse_envelope(*text, max_bytes);
    if (!env) return fail(env.error().code, file.string() + ": " + env.error().message);
    // Say what is being signed: a signer must see the document, not just a file name.
    std::string what;
    if (env->payload_type == core::payload_type::manifest) {
        auto m = core::parse_manifest(as_text(env->payload));
        if (!m) return fail(m.error().code, file.string() + ": " + m.error().message);
        what = describe_manifest(*m);
    } else if (env->payload_type == core::payload_type::root) {
        auto r = core::parse_root(as_text(env->payload));
        if (!r) return fail(r.error().code, file.string() + ": " + r.error().message);
        what = describe_root(*r);
    } else {
        return fail(Errc::invalid_argument,
                    file.string() + ": only staged manifests and roots are signed this way");
    }
    const std::size_t before = env->signatures.size();
    core::add_signature(*env, *key);
    if (env->signatures.size() > core::kMaxSignatures) {
        return fail(Errc::too_large, file.string() + ": too many signatures");
    }
    if (auto ok = io::write_file_atomic(file, core::serialize_envelope(*env)); !ok) {
        return forward(ok);
    }
    const bool added = env->signatures.size() != before;
    return (added ? "signed " : "already signed by this key: ") + what + " with key " +
           crypto::key_id(key->public_key);
}

}  // namespace patchswarm::seeder
