#include "seeder/payload_intake.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "core/path_rules.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/key_files.hpp"
#include "io/x509.hpp"
#include "seeder/publish_detail.hpp"

namespace patchswarm::seeder::publishing {

namespace fs = std::filesystem;

namespace {

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

// Each name passed validate_relative_path while it was copied; what is left of the Windows rules
// is about pairs: "Setup.exe" beside "setup.exe" is one file on a Windows endpoint.
Result<void> refuse_case_collisions(const std::map<std::string, std::uint64_t>& files) {
    std::vector<std::string_view> paths;
    paths.reserve(files.size());
    for (const auto& [path, size] : files) paths.push_back(path);
    if (auto c = core::find_case_collision(paths)) {
        return fail(Errc::unsafe_path, "payload paths '" + c->first_name + "' and '" +
                                           c->second_name +
                                           "' differ only in case, one name on Windows");
    }
    return {};
}

}  // namespace

Result<PayloadIntake> take_in_payload(const fs::path& source, const std::string& name,
                                      bool single_file, const fs::path& payload_root,
                                      const fs::path& fleet_ca_file) {
    PayloadCopier copier;
    if (auto ok = copier.copy(source, payload_root / name, name, single_file); !ok) {
        return forward(ok);
    }
    if (copier.files().empty()) return fail(Errc::invalid_argument, "payload has no files");
    if (auto ok = refuse_case_collisions(copier.files()); !ok) return forward(ok);

    // A repository with a fleet CA publishes SSL torrents: only enrolled endpoints (holding a
    // certificate from that CA) can join the swarm. The torrent, and so the CA, is bound by the
    // signed manifest's info-hash.
    std::string fleet_ca;
    if (auto ca = io::read_file(fleet_ca_file, io::x509::kMaxPemBytes); ca) {
        fleet_ca = std::move(*ca);
    } else if (ca.error().code != Errc::not_found) {
        return fail(ca.error().code, "fleet CA: " + ca.error().message);
    }
    auto torrent = io::swarm::create_torrent(payload_root / name, fleet_ca);
    if (!torrent) return fail(torrent.error().code, "torrent: " + torrent.error().message);
    if (!single_file && torrent->single_file) {
        if (auto ok = flatten_single_file_folder(payload_root, name, torrent->name); !ok) {
            return forward(ok);
        }
    }
    auto files = hash_torrent_files(*torrent, copier, payload_root);
    if (!files) return forward(files);
    return PayloadIntake{std::move(*torrent), std::move(*files)};
}

}  // namespace patchswarm::seeder::publishing
