// Building and checking .torrent files (see torrent_file.hpp). libtorrent 2.0 reports some
// failures only by throwing; they are caught here and returned as values.
#include "io/swarm/torrent_file.hpp"

#include <algorithm>
#include <exception>
#include <iterator>
#include <libtorrent/bdecode.hpp>
#include <libtorrent/bencode.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/file_storage.hpp>
#include <libtorrent/torrent_info.hpp>
#include <system_error>

#include "core/manifest.hpp"
#include "io/swarm/detail.hpp"

namespace patchswarm::io::swarm {

namespace fs = std::filesystem;

namespace {

// With v2's 16 KiB minimum piece size the piece layers of a release of a few GiB stay well
// below this.
constexpr int kMaxTorrentBytes = 64 * 1024 * 1024;
constexpr int kMaxDecodeDepth = 100;

std::string to_hex(const lt::sha256_hash& h) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (char c : h) {
        const auto b = static_cast<unsigned char>(c);
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xf]);
    }
    return out;
}

// add_files() would follow symlinks (or, with a flag, record them); a payload is only regular
// files and folders, so anything else is refused before libtorrent sees it.
Result<void> check_payload_tree(const fs::path& root) {
    std::error_code ec;
    const auto st = fs::symlink_status(root, ec);
    if (ec) return fail(Errc::not_found, "payload " + root.string() + ": " + ec.message());
    if (fs::is_symlink(st))
        return fail(Errc::unsafe_path, "payload is a symlink: " + root.string());
    if (fs::is_regular_file(st)) return {};
    if (!fs::is_directory(st)) {
        return fail(Errc::unsafe_path, "payload is not a file or folder: " + root.string());
    }
    fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
    if (ec) return fail(Errc::io, "payload " + root.string() + ": " + ec.message());
    std::size_t regular = 0;
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) return fail(Errc::io, "payload " + root.string() + ": " + ec.message());
        const auto s = it->symlink_status(ec);
        if (ec) return fail(Errc::io, it->path().string() + ": " + ec.message());
        if (fs::is_symlink(s))
            return fail(Errc::unsafe_path, "symlink in payload: " + it->path().string());
        if (fs::is_regular_file(s)) {
            ++regular;
        } else if (!fs::is_directory(s)) {
            return fail(Errc::unsafe_path, "special file in payload: " + it->path().string());
        }
    }
    if (ec) return fail(Errc::io, "payload " + root.string() + ": " + ec.message());
    if (regular == 0) return fail(Errc::invalid_argument, "payload folder has no files");
    return {};
}

}  // namespace

namespace detail {

lt::load_torrent_limits torrent_limits() {
    lt::load_torrent_limits limits;
    limits.max_buffer_size = kMaxTorrentBytes;
    limits.max_pieces = kMaxPieces;
    limits.max_decode_depth = kMaxDecodeDepth;
    limits.max_decode_tokens = kMaxDecodeTokens;
    return limits;
}

// libtorrent 2.0 has no constructor taking both load limits and an error_code: decode with the
// error_code overload of bdecode (which enforces depth and token limits), then build the
// torrent_info from the node with the limits; that one reports failure by throwing.
Result<std::shared_ptr<const lt::torrent_info>> parse_torrent(
    const std::vector<std::uint8_t>& bytes) {
    const lt::load_torrent_limits limits = torrent_limits();
    if (bytes.size() > static_cast<std::size_t>(limits.max_buffer_size)) {
        return fail(Errc::too_large,
                    "torrent larger than " + std::to_string(limits.max_buffer_size) + " bytes");
    }
    const lt::span<const char> buf(reinterpret_cast<const char*>(bytes.data()),
                                   static_cast<std::ptrdiff_t>(bytes.size()));
    lt::error_code ec;
    int error_pos = 0;
    lt::bdecode_node root =
        lt::bdecode(buf, ec, &error_pos, limits.max_decode_depth, limits.max_decode_tokens);
    if (ec) {
        const bool limit =
            ec == lt::bdecode_errors::depth_exceeded || ec == lt::bdecode_errors::limit_exceeded;
        return fail(limit ? Errc::too_large : Errc::malformed,
                    "torrent: " + ec.message() + " at byte " + std::to_string(error_pos));
    }
    try {
        return std::make_shared<const lt::torrent_info>(root, limits);
    } catch (const lt::system_error& e) {
        const bool limit = e.code() == lt::errors::too_many_pieces_in_torrent;
        return fail(limit ? Errc::too_large : Errc::malformed,
                    std::string("torrent: ") + e.code().message());
    } catch (const std::exception& e) {
        return fail(Errc::malformed, std::string("torrent: ") + e.what());
    }
}

// Builds the project summary of a parsed torrent and applies our own checks on top of
// libtorrent's (which already sanitises path elements but would quietly rewrite rather than
// refuse them).
Result<TorrentSummary> summarize(const lt::torrent_info& ti,
                                 const std::vector<std::uint8_t>& bytes) {
    if (!ti.info_hashes().has_v2()) {
        return fail(Errc::malformed, "torrent has no v2 info-hash (BitTorrent v1 only)");
    }
    const lt::file_storage& files = ti.files();
    TorrentSummary out;
    out.bytes = bytes;
    out.infohash_v2 = to_hex(ti.info_hashes().v2);
    out.ssl_root_cert = std::string(ti.ssl_cert());
    out.name = ti.name();
    if (auto ok = core::validate_relative_path(out.name); !ok) {
        return fail(Errc::unsafe_path, "torrent name: " + ok.error().message);
    }
    if (out.name.find('/') != std::string::npos) {
        return fail(Errc::unsafe_path, "torrent name has more than one component");
    }

    std::vector<lt::file_index_t> real_files;
    for (const lt::file_index_t i : files.file_range()) {
        const auto flags = files.file_flags(i);
        if (flags & lt::file_storage::flag_pad_file) continue;
        if (flags & lt::file_storage::flag_symlink) {
            return fail(Errc::unsafe_path, "torrent contains a symlink: " + files.file_path(i));
        }
        real_files.push_back(i);
    }
    if (real_files.empty()) return fail(Errc::malformed, "torrent has no files");

    // A single-file torrent stores the file under the torrent name itself; anything else is a
    // folder whose paths start with "<name>/".
    out.single_file = real_files.size() == 1 && files.file_path(real_files.front()) == out.name;
    const std::string prefix = out.name + "/";
    for (const lt::file_index_t i : real_files) {
        std::string path = files.file_path(i);
        if (!out.single_file) {
            if (!path.starts_with(prefix)) {
                return fail(Errc::unsafe_path, "torrent file outside its folder: " + path);
            }
            path.erase(0, prefix.size());
        }
        if (auto ok = core::validate_relative_path(path); !ok) {
            return fail(Errc::unsafe_path, "torrent file path: " + ok.error().message);
        }
        out.files.push_back({std::move(path), static_cast<std::uint64_t>(files.file_size(i))});
    }
    std::sort(out.files.begin(), out.files.end(),
              [](const TorrentFile& a, const TorrentFile& b) { return a.path < b.path; });
    for (std::size_t k = 1; k < out.files.size(); ++k) {
        if (out.files[k].path == out.files[k - 1].path) {
            return fail(Errc::unsafe_path, "torrent lists a file twice: " + out.files[k].path);
        }
    }
    return out;
}

}  // namespace detail

Result<TorrentSummary> create_torrent(const fs::path& payload, const std::string& ssl_root_cert) {
    std::error_code fec;
    fs::path root = fs::absolute(payload, fec);
    if (fec) return fail(Errc::io, "payload " + payload.string() + ": " + fec.message());
    root = root.lexically_normal();
    if (!root.has_filename()) root = root.parent_path();  // "dir/" -> "dir"
    if (auto ok = check_payload_tree(root); !ok) return std::unexpected(ok.error());

    std::vector<char> encoded;
    try {
        lt::file_storage files;
        lt::add_files(files, root.string());
        if (files.num_files() == 0) return fail(Errc::invalid_argument, "payload has no files");
        lt::create_torrent ct(files, 0, lt::create_torrent::v2_only);
        // Same payload, same bytes: no wall-clock date in the torrent.
        ct.set_creation_date(0);
        ct.set_creator("patchswarm");
        if (!ssl_root_cert.empty()) ct.set_root_cert(ssl_root_cert);
        lt::error_code ec;
        lt::set_piece_hashes(ct, root.parent_path().string(), ec);
        if (ec) return fail(Errc::io, "hashing " + root.string() + ": " + ec.message());
        lt::bencode(std::back_inserter(encoded), ct.generate());
    } catch (const lt::system_error& e) {
        return fail(Errc::io, "creating torrent of " + root.string() + ": " + e.code().message());
    } catch (const std::exception& e) {
        return fail(Errc::io, "creating torrent of " + root.string() + ": " + e.what());
    }
    // Run the result through the same checks as an untrusted torrent: what we publish is
    // exactly what endpoints will accept.
    return inspect_torrent(std::vector<std::uint8_t>(encoded.begin(), encoded.end()));
}

Result<TorrentSummary> inspect_torrent(const std::vector<std::uint8_t>& bytes) {
    auto ti = detail::parse_torrent(bytes);
    if (!ti) return std::unexpected(ti.error());
    return detail::summarize(**ti, bytes);
}

}  // namespace patchswarm::io::swarm
