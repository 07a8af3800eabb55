// Turns a finished download into the install folder: every file is copied out of the swarm's
// download folder while its bytes are hashed, and only a copy whose every byte matched the signed
// manifest is kept. The install then runs on exactly the bytes that were verified (no
// verify-then-reopen race), and nothing that is not in the manifest is ever in the install folder.
#pragma once

#include <filesystem>

#include "base/error.hpp"
#include "core/manifest.hpp"

namespace patchswarm::io {
class Env;
}

namespace patchswarm::daemon {

// `download_root` is the swarm save path (payload at download_root/<name>); `install_dir` is
// replaced atomically (built as install_dir + ".tmp", then renamed). Errc::hash_mismatch or
// Errc::io on failure, leaving no install_dir behind. Files are copied through `env`
// (io::Env::copy_file_hashed). Blocking: runs on a worker thread.
[[nodiscard]] Result<void> stage_payload(io::Env& env, const core::Manifest& m,
                                         const std::filesystem::path& download_root,
                                         const std::filesystem::path& install_dir);

}  // namespace patchswarm::daemon
