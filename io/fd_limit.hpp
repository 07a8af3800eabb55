// The open-file limit (RLIMIT_NOFILE) and what it allows a server to hold: every HTTP
// connection is a descriptor, and so is every libtorrent peer, payload file, SQLite file and
// watch. A connection accepted beyond the limit fails with EMFILE and waits in the listen
// backlog, so the server's connection cap must stay under what the limit leaves.
//
// Threading: raise_fd_limit() changes the process-wide limit; call it at start-up, before other
// threads open descriptors. The rest is pure.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/error.hpp"

namespace patchswarm::io {

struct FdLimit {
    std::uint64_t soft = 0;  // the limit in force
    std::uint64_t hard = 0;  // what an unprivileged process may raise it to
};

// Descriptors kept back from HTTP connections: libtorrent's peers (connections_limit 400) and
// files, SQLite (3 per connection to a WAL database), inotify, the listeners, epoll, logging.
inline constexpr std::uint64_t kFdReserve = 1024;

// Raises the soft limit to the hard limit (an infinite hard limit: to fs.nr_open, as the kernel
// allows no more) and returns the limits in force afterwards. Errc::io when the limit cannot be
// read; a refused raise is not an error (the limits returned say what is in force).
[[nodiscard]] Result<FdLimit> raise_fd_limit();

// How many HTTP connections `soft_limit` descriptors leave room for: the limit less kFdReserve,
// or half of a limit too small for that reserve; at least 1.
[[nodiscard]] std::size_t connections_for_fd_limit(std::uint64_t soft_limit);

}  // namespace patchswarm::io
