// POSIX file descriptor helpers shared by crypto (key files), fsutil and the payload stager:
// an owning descriptor, errno → Error, and read/write loops that retry on EINTR and bound what
// they read. Header-only so that crypto/ needs nothing from common/ but headers.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::io::posix {

// "cannot open /x: No such file or directory", with ENOENT → not_found, EEXIST → already_exists.
inline Error errno_error(std::string_view what, const std::filesystem::path& path, int err) {
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

inline Result<void> write_all(int fd, const std::filesystem::path& path, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("cannot write", path, errno));
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

// Reads until EOF, retrying on EINTR; `sink` gets each chunk as a span of bytes. Fails with
// too_large once more than max_bytes arrived, so a growing or endless file (a FIFO, /dev/zero)
// cannot exhaust memory. A sink may return a Result<void> to stop with an error.
template <typename Sink>
Result<void> read_all(int fd, const std::filesystem::path& path, std::uint64_t max_bytes,
                      Sink&& sink) {
    std::vector<std::uint8_t> buf(64 * 1024);
    std::uint64_t total = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("cannot read", path, errno));
        if (n == 0) return {};
        total += static_cast<std::uint64_t>(n);
        if (total > max_bytes) {
            return fail(Errc::too_large,
                        path.string() + ": larger than " + std::to_string(max_bytes) + " bytes");
        }
        const std::span<const std::uint8_t> chunk(buf.data(), static_cast<std::size_t>(n));
        if constexpr (std::is_same_v<decltype(sink(chunk)), void>) {
            sink(chunk);
        } else {
            if (auto r = sink(chunk); !r) return r;
        }
    }
}

}  // namespace patchswarm::io::posix
