#include "common/fsutil.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace patchswarm {

namespace {

namespace fs = std::filesystem;

Error errno_error(std::string_view what, const fs::path& path, int err) {
    Errc code = Errc::io;
    if (err == ENOENT) code = Errc::not_found;
    if (err == EEXIST) code = Errc::already_exists;
    return Error{code, std::string(what) + " " + path.string() + ": " + std::strerror(err)};
}

// Closes a POSIX descriptor on every return path.
class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }
    // Closes explicitly so that a failing close (a lost write on some file systems) is seen.
    int close() { return ::close(std::exchange(fd_, -1)); }

  private:
    int fd_;
};

Result<void> write_all(int fd, const fs::path& path, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("cannot write", path, errno));
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

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
    std::vector<char> buf(64 * 1024);
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("cannot read", path, errno));
        if (n == 0) return content;
        if (content.size() + static_cast<std::size_t>(n) > max_bytes) {
            return fail(Errc::too_large,
                        path.string() + ": larger than " + std::to_string(max_bytes) + " bytes");
        }
        content.append(buf.data(), static_cast<std::size_t>(n));
    }
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

}  // namespace patchswarm
