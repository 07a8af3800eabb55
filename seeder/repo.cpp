#include "seeder/repo.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/json_strict.hpp"
#include "core/manifest.hpp"
#include "core/trust.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/key_files.hpp"

namespace patchswarm::seeder {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

// nlohmann throws on type mismatches; these helpers turn a missing or mistyped field into a
// Result so that a damaged file gives one clear message.
Result<std::uint64_t> get_uint(const json& obj, const char* key) {
    const auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_unsigned()) {
        return fail(Errc::malformed, std::string("\"") + key + "\" must be a non-negative integer");
    }
    return it->get<std::uint64_t>();
}

Result<std::string> get_string(const json& obj, const char* key) {
    const auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) {
        return fail(Errc::malformed, std::string("\"") + key + "\" must be a string");
    }
    return it->get<std::string>();
}

Result<json> parse_object(std::string_view text, std::string_view what) {
    json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) {
        return fail(Errc::malformed, std::string(what) + " is not a JSON object");
    }
    return doc;
}

Result<void> check_format(const json& doc, std::string_view what) {
    auto format = get_uint(doc, "format");
    if (!format) return std::unexpected(format.error());
    if (*format != 1) {
        return fail(Errc::malformed,
                    std::string(what) + " has format " + std::to_string(*format) + ", expected 1");
    }
    return {};
}

Result<core::FeedEntry> parse_index_entry(const json& item) {
    if (!item.is_object()) return fail(Errc::malformed, "index entry is not an object");
    core::FeedEntry entry;
    auto id = get_string(item, "id");
    auto sequence = get_uint(item, "sequence");
    auto hash = get_string(item, "manifest_sha256");
    if (!id) return std::unexpected(id.error());
    if (!sequence) return std::unexpected(sequence.error());
    if (!hash) return std::unexpected(hash.error());
    if (auto ok = core::validate_release_id(*id); !ok) return std::unexpected(ok.error());
    if (!is_sha256_hex(*hash)) return fail(Errc::malformed, "bad manifest_sha256 for " + *id);
    entry.id = std::move(*id);
    entry.sequence = *sequence;
    entry.manifest_sha256 = std::move(*hash);
    return entry;
}

}  // namespace

bool is_sha256_hex(std::string_view text) {
    return core::json_strict::is_lower_hex(text, 64);
}

Result<void> validate_repo_name(std::string_view name) {
    // The manifest and feed carry the name and endpoints check it with the release id rule.
    if (auto ok = core::validate_release_id(name); !ok) {
        return fail(Errc::invalid_argument, "repository name '" + std::string(name) +
                                                "' must be 1-64 characters of A-Z a-z 0-9 . _ -");
    }
    return {};
}

// ---- repo.json -------------------------------------------------------------------------------

std::string serialize_repo_info(const RepoInfo& info) {
    json doc = {{"format", info.format}, {"name", info.name}, {"sequence", info.sequence}};
    return doc.dump() + "\n";
}

Result<RepoInfo> parse_repo_info(std::string_view text) {
    auto doc = parse_object(text, "repo.json");
    if (!doc) return std::unexpected(doc.error());
    if (auto ok = check_format(*doc, "repo.json"); !ok) return std::unexpected(ok.error());
    auto name = get_string(*doc, "name");
    auto sequence = get_uint(*doc, "sequence");
    if (!name) return std::unexpected(name.error());
    if (!sequence) return std::unexpected(sequence.error());
    if (auto ok = validate_repo_name(*name); !ok) {
        return fail(Errc::malformed, "repo.json: " + ok.error().message);
    }
    return RepoInfo{1, std::move(*name), *sequence};
}

Result<RepoInfo> load_repo_info(const RepoPaths& paths) {
    auto text = io::read_file(paths.repo_json(), kMaxRepoJsonBytes);
    if (!text) {
        if (text.error().code == Errc::not_found) {
            return fail(Errc::not_found, paths.root().string() +
                                             " is not a patchswarm repository (no repo.json; "
                                             "the first publish creates it)");
        }
        return std::unexpected(text.error());
    }
    auto info = parse_repo_info(*text);
    if (!info)
        return fail(info.error().code, paths.repo_json().string() + ": " + info.error().message);
    return info;
}

// ---- index.json ------------------------------------------------------------------------------

std::string serialize_index(const Index& index) {
    json releases = json::array();
    for (const auto& entry : index.releases) {
        releases.push_back({{"id", entry.id},
                            {"sequence", entry.sequence},
                            {"manifest_sha256", entry.manifest_sha256}});
    }
    json doc = {{"format", index.format}, {"generation", index.generation}, {"releases", releases}};
    return doc.dump() + "\n";
}

Result<Index> parse_index(std::string_view text) {
    auto doc = parse_object(text, "index.json");
    if (!doc) return std::unexpected(doc.error());
    if (auto ok = check_format(*doc, "index.json"); !ok) return std::unexpected(ok.error());
    Index index;
    auto generation = get_uint(*doc, "generation");
    if (!generation) return std::unexpected(generation.error());
    index.generation = *generation;

    const auto it = doc->find("releases");
    if (it == doc->end() || !it->is_array()) {
        return fail(Errc::malformed, "\"releases\" must be an array");
    }
    if (it->size() > core::kMaxFeedReleases) {
        return fail(Errc::too_large, "index lists more than " +
                                         std::to_string(core::kMaxFeedReleases) + " releases");
    }
    std::set<std::string> seen;
    for (const auto& item : *it) {
        auto entry = parse_index_entry(item);
        if (!entry) return fail(Errc::malformed, "index.json: " + entry.error().message);
        if (!seen.insert(entry->id).second) {
            return fail(Errc::malformed, "index.json lists " + entry->id + " twice");
        }
        index.releases.push_back(std::move(*entry));
    }
    return index;
}

Result<Index> load_index(const RepoPaths& paths) {
    auto text = io::read_file(paths.index_json(), kMaxIndexBytes);
    if (!text) {
        if (text.error().code == Errc::not_found) return Index{};
        return std::unexpected(text.error());
    }
    auto index = parse_index(*text);
    if (!index) {
        return fail(index.error().code, paths.index_json().string() + ": " + index.error().message);
    }
    return index;
}

// ---- root documents ----------------------------------------------------------------------------

Result<CurrentRoot> load_current_root(const RepoPaths& paths) {
    std::uint64_t newest = 0;
    std::error_code ec;
    for (fs::directory_iterator it(paths.roots_dir(), ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = "/v1/root/" + it->path().filename().string();
        if (auto v = core::root_route_version(name)) newest = std::max(newest, *v);
    }
    if (newest == 0) {
        return fail(Errc::not_found, paths.root().string() +
                                         " has no root document: run `patchswarm-seeder root "
                                         "init` first");
    }
    auto text = io::read_file(paths.root_version(newest), core::kMaxRootEnvelopeBytes);
    if (!text) return std::unexpected(text.error());
    auto doc = core::verify_pinned_root(*text);
    if (!doc) {
        return fail(doc.error().code,
                    paths.root_version(newest).string() + ": " + doc.error().message);
    }
    if (doc->version != newest) {
        return fail(Errc::malformed, paths.root_version(newest).string() + " holds version " +
                                         std::to_string(doc->version));
    }
    return CurrentRoot{newest, std::move(*text), std::move(*doc)};
}

// ---- lock ------------------------------------------------------------------------------------

Result<RepoLock> RepoLock::acquire(const RepoPaths& paths) {
    std::error_code ec;
    fs::create_directories(paths.root(), ec);
    if (ec) return fail(Errc::io, "cannot create " + paths.root().string() + ": " + ec.message());

    const int fd = ::open(paths.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return fail(Errc::io,
                    "cannot open " + paths.lock_file().string() + ": " + std::strerror(errno));
    }
    int rc = 0;
    do {
        rc = ::flock(fd, LOCK_EX);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        const int err = errno;
        ::close(fd);
        return fail(Errc::io,
                    "cannot lock " + paths.lock_file().string() + ": " + std::strerror(err));
    }
    return RepoLock(fd);
}

RepoLock::~RepoLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

// ---- keygen ----------------------------------------------------------------------------------

Result<void> keygen(const fs::path& base) {
    if (base.filename().empty()) {
        return fail(Errc::invalid_argument, "--out needs a file name base, e.g. keys/release");
    }
    fs::path secret = base;
    secret += ".key";
    fs::path pub = base;
    pub += ".pub";
    std::error_code ec;
    for (const auto& path : {secret, pub}) {
        if (fs::exists(fs::symlink_status(path, ec))) {
            return fail(Errc::already_exists, path.string() + " exists; refusing to overwrite");
        }
    }
    if (base.has_parent_path()) {
        fs::create_directories(base.parent_path(), ec);
        if (ec) {
            return fail(Errc::io,
                        "cannot create " + base.parent_path().string() + ": " + ec.message());
        }
    }
    return io::write_keypair(base, crypto::generate_keypair());
}

}  // namespace patchswarm::seeder
