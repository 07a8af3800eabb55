// Tells when files in a few folders change, without polling: inotify (Linux) read through an
// Asio posix::stream_descriptor on the program's io_context.
//
// A folder is watched rather than a file because the files that matter are replaced by rename
// (index.json, root/N.json, keys) or rewritten by other processes (fleet.db's WAL): a watch on
// the file itself would follow the old inode. Every event in the folder is reported by name,
// and the owner decides what it means (and must re-check the file itself: the watcher says "may
// have changed", never what changed). Names reported together came in one read, so a burst of
// events (a publish writes several files) arrives as one call.
//
// Events can be lost (the kernel queue overflows, a folder is replaced): owners keep a coarse
// re-check of their own (serve: every kMaintenance), so a missed event costs at most that.
// Where inotify is unavailable, create() fails and the owner relies on that re-check alone.
//
// Threading: create, add and destroy on the io_context's thread; the handler runs there too.
// The io_context must outlive the FileWatch. Destroying it cancels the pending read; the handler
// is never called afterwards.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "base/error.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::io {

class FileWatch {
  public:
    // Full paths (folder / name) that may have changed; the folder itself when the kernel
    // dropped events for it (queue overflow): then everything in it may have changed.
    using Handler = std::function<void(const std::set<std::filesystem::path>& changed)>;

    // Errc::io when inotify cannot be set up (no inotify, out of instances).
    [[nodiscard]] static Result<std::unique_ptr<FileWatch>> create(boost::asio::io_context& io,
                                                                   Handler handler);
    ~FileWatch();
    FileWatch(const FileWatch&) = delete;
    FileWatch& operator=(const FileWatch&) = delete;

    // Watches `folder` (not recursively) for files created, written, renamed into or out of it,
    // deleted or changed in their attributes. Errc::not_found when the folder does not exist,
    // Errc::io otherwise.
    [[nodiscard]] Result<void> add(const std::filesystem::path& folder);

  private:
    struct Impl;
    explicit FileWatch(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;  // shared with the pending read, which holds it while it runs
};

}  // namespace patchswarm::io
