#include "seeder/manifest_signing.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/envelope.hpp"
#include "io/fs.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/payload_intake.hpp"
#include "seeder/publish_detail.hpp"
#include "seeder/root_admin.hpp"

namespace patchswarm::seeder::publishing {

namespace fs = std::filesystem;

namespace {

core::Manifest build_manifest(const PublishRequest& req, const PublishInputs& in,
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
    m.idempotent = req.idempotent;
    return m;
}

}  // namespace

Result<StagedRelease> stage_release(const RepoPaths& paths, const PublishRequest& req,
                                    const PublishInputs& in, const std::string& repository,
                                    std::uint64_t sequence, std::int64_t now) {
    StagedRelease staged;
    staged.dir = paths.staging_dir() / (req.id + "-" + random_suffix());
    std::error_code ec;
    fs::create_directories(staged.dir / "payload", ec);
    if (ec) return io_error("cannot create", staged.dir, ec);
    auto intake = take_in_payload(in.payload, in.name, in.single_file, staged.dir / "payload",
                                  fleet_ca_cert(paths));
    if (!intake) return forward(intake);
    const io::swarm::TorrentSummary& torrent = intake->torrent;

    staged.manifest =
        build_manifest(req, in, repository, sequence, now, torrent, std::move(intake->files));
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
    const std::string_view torrent_bytes(reinterpret_cast<const char*>(torrent.bytes.data()),
                                         torrent.bytes.size());
    if (auto ok = io::write_file_atomic(staged.dir / "release.torrent", torrent_bytes); !ok) {
        return forward(ok);
    }
    return staged;
}

Result<StagedRelease> sign_staged_release(const fs::path& dir, const std::string& id,
                                          std::span<const crypto::KeyPair> keys,
                                          std::span<const fs::path> merge,
                                          const CurrentRoot& root) {
    const std::size_t max_bytes = core::kMaxManifestBytes * 2;
    auto text = io::read_file(dir / "manifest.json", max_bytes);
    if (!text) {
        if (text.error().code == Errc::not_found) {
            return fail(Errc::not_found, "no staged release " + id + " (publish --stage)");
        }
        return forward(text);
    }
    auto env = core::parse_envelope(*text, max_bytes);
    if (!env) return fail(env.error().code, "staged manifest: " + env.error().message);
    auto m = core::parse_manifest(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    if (!m) return fail(m.error().code, "staged manifest: " + m.error().message);
    if (m->id != id) return fail(Errc::malformed, "staged manifest names " + m->id);

    for (const auto& key : keys) core::add_signature(*env, key);
    const auto release = core::key_set(root.doc, root.doc.release);
    for (const auto& file : merge) {
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
    return staged;
}

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

}  // namespace patchswarm::seeder::publishing
