#include "daemon/payload_stager.hpp"

#include <set>
#include <system_error>

#include "crypto/crypto.hpp"
#include "io/crash_point.hpp"
#include "io/env.hpp"

namespace patchswarm::daemon {
namespace fs = std::filesystem;
namespace {

// The copy hashes exactly the bytes it writes and never reads past the signed size (endless
// data); what it wrote must then be the signed file.
Result<void> copy_verified(io::Env& env, const fs::path& src, const fs::path& dst,
                           const core::FileEntry& f, bool executable) {
    auto copied = env.copy_file_hashed(src, dst, f.size, executable);
    if (!copied) {
        if (copied.error().code == Errc::too_large) {
            return fail(Errc::hash_mismatch, f.path + ": larger than signed");
        }
        return std::unexpected(copied.error());
    }
    if (copied->size != f.size) {
        return fail(Errc::hash_mismatch, f.path + ": size differs from signed");
    }
    if (crypto::to_hex(copied->sha256) != f.sha256) {
        return fail(Errc::hash_mismatch, f.path + ": SHA-256 differs from the signed manifest");
    }
    return {};
}

// The install and verify programs named by a relative argv[0] are made executable; everything
// else is plain data. Torrents do not carry trustworthy modes, the signed argv does.
std::set<std::string> executables(const core::Manifest& m) {
    std::set<std::string> out;
    auto add = [&](const core::CommandLine& c) {
        if (c.argv.empty()) return;
        std::string p = c.argv[0];
        if (p.starts_with("./")) p = p.substr(2);
        out.insert(p);
    };
    add(m.install);
    if (m.verify) add(*m.verify);
    return out;
}

}  // namespace

Result<void> stage_payload(io::Env& env, const core::Manifest& m, const fs::path& download_root,
                           const fs::path& install_dir) {
    std::error_code ec;
    const fs::path top = download_root / m.name;
    const auto top_status = fs::symlink_status(top, ec);
    if (ec) return fail(Errc::not_found, "download missing: " + top.string());
    const bool single = fs::is_regular_file(top_status);
    if (!single && !fs::is_directory(top_status)) {
        return fail(Errc::unsafe_path, "download is neither a file nor a folder: " + top.string());
    }

    const fs::path tmp = install_dir.string() + ".tmp";
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) return fail(Errc::io, "cannot create " + tmp.string() + ": " + ec.message());

    const auto exec = executables(m);
    for (const auto& f : m.files) {
        // Paths were validated when the manifest was parsed; they cannot leave `tmp`.
        const fs::path src = single ? top : top / f.path;
        const fs::path dst = tmp / f.path;
        fs::create_directories(dst.parent_path(), ec);
        if (ec) return fail(Errc::io, "cannot create " + dst.parent_path().string());
        if (auto ok = copy_verified(env, src, dst, f, exec.contains(f.path)); !ok) {
            fs::remove_all(tmp, ec);
            return ok;
        }
        io::crash_point("stage.file_copied");
    }
    fs::remove_all(install_dir, ec);
    fs::rename(tmp, install_dir, ec);
    if (ec) {
        fs::remove_all(tmp, ec);
        return fail(Errc::io, "cannot move staged payload into " + install_dir.string());
    }
    io::crash_point("stage.renamed");
    return {};
}

}  // namespace patchswarm::daemon
