#include "io/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "io/posix_io.hpp"

namespace patchswarm::io {

namespace {

namespace fs = std::filesystem;

using io::posix::errno_error;
using io::posix::Fd;
using io::posix::write_all;

// Writes and fsyncs the temporary file; the caller renames it into place.
Result<void> fill_temp(int fd, const fs::path& tmp, std::string_view content, fs::perms perms) {
    // mkstemp creates 0600; set the requested mode exactly (no umask surprises).
    if (::fchmod(fd, static_cast<mode_t>(perms & fs::perms::mask)) != 0) {
        return std::unexpected(errno_error("chmod", tmp, errno));
    }
    if (auto r = write_all(fd, tmp, content); !r) return r;
    if (::fsync(fd) != 0) return std::unexpected(errno_error("fsync", tmp, errno));
    return {};
}

Result<void> fsync_dir(const fs::path& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(errno_error("cannot open folder", dir, errno));
    if (::fsync(fd.get()) != 0) return std::unexpected(errno_error("fsync", dir, errno));
    return {};
}

}  // namespace

Result<std::string> read_file(const fs::path& path, std::size_t max_bytes) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(errno_error("cannot open", path, errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return std::unexpected(errno_error("stat", path, errno));
    if (S_ISDIR(st.st_mode)) return fail(Errc::io, path.string() + ": is a folder");
    if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > max_bytes) {
        return fail(Errc::too_large,
                    path.string() + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
    // The size from fstat is only a hint: the file may grow while we read, or be a pipe.
    std::string content;
    auto r =
        io::posix::read_all(fd.get(), path, max_bytes, [&](std::span<const std::uint8_t> chunk) {
            content.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
        });
    if (!r) return std::unexpected(r.error());
    return content;
}

Result<void> write_file_atomic(const fs::path& path, std::string_view content, fs::perms perms) {
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    // Same folder as the target, so rename() is atomic (never crosses a file system).
    std::string tmp_name = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
    Fd fd(::mkostemp(tmp_name.data(), O_CLOEXEC));
    const fs::path tmp = tmp_name;
    if (fd.get() < 0) return std::unexpected(errno_error("cannot create", tmp, errno));

    auto filled = fill_temp(fd.get(), tmp, content, perms);
    if (filled && fd.close() != 0) filled = std::unexpected(errno_error("close", tmp, errno));
    if (filled && ::rename(tmp.c_str(), path.c_str()) != 0) {
        filled = std::unexpected(errno_error("cannot rename onto", path, errno));
    }
    if (!filled) {
        ::unlink(tmp.c_str());
        return filled;
    }
    // Without this the rename itself may be lost in a crash, leaving the old content.
    return fsync_dir(dir);
}

Result<CopiedFile> copy_file_hashed(const fs::path& src, const fs::path& dst,
                                    std::uint64_t max_bytes, bool executable) {
    Fd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (in.get() < 0) return std::unexpected(errno_error("cannot open", src, errno));
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return fail(Errc::unsafe_path, "not a regular file: " + src.string());
    }
    const mode_t mode = executable ? 0755 : 0644;
    Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (out.get() < 0) return std::unexpected(errno_error("cannot create", dst, errno));

    crypto::Sha256Stream hash;
    CopiedFile copied;
    // Every byte hashed is a byte written, and nothing past max_bytes is read.
    auto ok = posix::read_all(in.get(), src, max_bytes, [&](std::span<const std::uint8_t> chunk) {
        copied.size += chunk.size();
        hash.update(chunk);
        return write_all(
            out.get(), dst,
            std::string_view(reinterpret_cast<const char*>(chunk.data()), chunk.size()));
    });
    if (!ok) return std::unexpected(ok.error());
    if (::fsync(out.get()) != 0) return std::unexpected(errno_error("fsync", dst, errno));
    // Exactly, whatever the umask made of the create mode.
    if (::fchmod(out.get(), mode) != 0) return std::unexpected(errno_error("chmod", dst, errno));
    copied.sha256 = hash.finish();
    return copied;
}

}  // namespace patchswarm::io
