// Small filesystem helpers with bounds and crash safety.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::io {

// Reads a whole file; Errc::too_large if it is larger than max_bytes, Errc::not_found if absent.
[[nodiscard]] Result<std::string> read_file(const std::filesystem::path& path,
                                            std::size_t max_bytes);

// Writes via a temporary file in the same folder, fsync, rename, fsync of the folder: after a
// crash the file holds either the old or the new content, never a mix.
[[nodiscard]] Result<void> write_file_atomic(
    const std::filesystem::path& path, std::string_view content,
    std::filesystem::perms perms = std::filesystem::perms::owner_read |
                                   std::filesystem::perms::owner_write |
                                   std::filesystem::perms::group_read |
                                   std::filesystem::perms::others_read);

// What copy_file_hashed wrote: exactly these bytes, with this digest.
struct CopiedFile {
    std::uint64_t size = 0;
    crypto::Sha256 sha256{};
};

// Copies the regular file `src` to the new file `dst` (created exclusively, never following a
// symlink at `src`), hashing exactly the bytes written, reading at most `max_bytes`
// (Errc::too_large past that: a file may not be longer than it was signed), then fsyncs it and
// sets mode 0755 when `executable`, else 0644. Errc::unsafe_path when `src` is not a regular
// file, Errc::io (or not_found) for OS errors. A failed copy may leave a partial `dst`.
[[nodiscard]] Result<CopiedFile> copy_file_hashed(const std::filesystem::path& src,
                                                  const std::filesystem::path& dst,
                                                  std::uint64_t max_bytes, bool executable);

}  // namespace patchswarm::io
