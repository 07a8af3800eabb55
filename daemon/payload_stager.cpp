#include "daemon/payload_stager.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <system_error>

#include "crypto/crypto.hpp"
#include "io/posix_io.hpp"

namespace patchswarm::daemon {
namespace fs = std::filesystem;
namespace {

using io::posix::errno_error;
using io::posix::Fd;

// Copies src to dst, hashing exactly the bytes written; refuses to follow a symlink at src and
// to read more than the manifest's size (endless data).
Result<void> copy_verified(const fs::path& src, const fs::path& dst, const core::FileEntry& f,
                           mode_t mode) {
    Fd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (in.get() < 0)
        return std::unexpected(errno_error("cannot open downloaded file", src, errno));
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return fail(Errc::unsafe_path, "not a regular file: " + src.string());
    }
    Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (out.get() < 0) return std::unexpected(errno_error("cannot create", dst, errno));

    crypto::Sha256Stream hash;
    std::uint64_t total = 0;
    // Never read past the signed size (endless data); every byte hashed is a byte written.
    auto copied =
        io::posix::read_all(in.get(), src, f.size, [&](std::span<const std::uint8_t> chunk) {
            total += chunk.size();
            hash.update(chunk);
            return io::posix::write_all(
                out.get(), dst,
                std::string_view(reinterpret_cast<const char*>(chunk.data()), chunk.size()));
        });
    if (!copied) {
        if (copied.error().code == Errc::too_large) {
            return fail(Errc::hash_mismatch, f.path + ": larger than signed");
        }
        return copied;
    }
    if (total != f.size) return fail(Errc::hash_mismatch, f.path + ": size differs from signed");
    if (crypto::to_hex(hash.finish()) != f.sha256) {
        return fail(Errc::hash_mismatch, f.path + ": SHA-256 differs from the signed manifest");
    }
    if (::fsync(out.get()) != 0) return std::unexpected(errno_error("fsync", dst, errno));
    if (::fchmod(out.get(), mode) != 0) return std::unexpected(errno_error("chmod", dst, errno));
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

Result<void> stage_payload(const core::Manifest& m, const fs::path& download_root,
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
        const mode_t mode = exec.contains(f.path) ? 0755 : 0644;
        if (auto ok = copy_verified(src, dst, f, mode); !ok) {
            fs::remove_all(tmp, ec);
            return ok;
        }
    }
    fs::remove_all(install_dir, ec);
    fs::rename(tmp, install_dir, ec);
    if (ec) {
        fs::remove_all(tmp, ec);
        return fail(Errc::io, "cannot move staged payload into " + install_dir.string());
    }
    return {};
}

}  // namespace patchswarm::daemon
