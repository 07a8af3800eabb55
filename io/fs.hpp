// Small filesystem helpers with bounds and crash safety.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/error.hpp"

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

}  // namespace patchswarm::io
