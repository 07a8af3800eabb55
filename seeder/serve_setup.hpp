// What `serve` checks and prepares before anything runs: option bounds, the repository's name,
// root and feed key, the seeder's own TLS identity and its addresses. Throws at start-up only
// (std::invalid_argument for options, std::runtime_error otherwise); the running seeder uses
// the Result-returning helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/error.hpp"
#include "core/root.hpp"
#include "crypto/crypto.hpp"
#include "io/x509.hpp"
#include "seeder/repo.hpp"
#include "seeder/server.hpp"
#include "seeder/tracker.hpp"

namespace patchswarm::seeder {

inline constexpr std::int64_t kRootExpiryWarning = 30 * 86'400;

// Throws std::invalid_argument naming the first option out of bounds.
void check_serve_options(const ServeOptions& options);

// Everything `serve` needs from the repository, checked before anything is started.
struct RepoForServe {
    RepoInfo info;
    crypto::KeyPair feed_key;
    std::uint64_t root_version = 0;
};
// Throws std::runtime_error ("... is not an initialised repository ...", root or feed key).
RepoForServe open_repo(const RepoPaths& paths, std::int64_t now);

// keys/feed.key, which must be a feed key of `root`: a feed signed by any other key would be
// refused by every endpoint. Errc::bad_signature when it is not, else the key file's errors.
[[nodiscard]] Result<crypto::KeyPair> feed_key_for(const RepoPaths& paths,
                                                   const core::RootDocument& root);

// Endpoints stop at an expired root (freeze check): logs a warning well before it happens.
void warn_if_root_expires_soon(const core::RootDocument& root, std::int64_t now);

// The seeder's own certificate: a fresh key each time, issued by the fleet CA for
// kSeederCertLifetime.
[[nodiscard]] Result<io::x509::KeyAndCert> seeder_certificate(const io::x509::KeyAndCert& ca);

// The address the tracker hands out for the seeder (--bt-public, or --bt with the bound port).
// Throws std::runtime_error when it is not a usable ip:port.
tracker::PeerAddress seeder_bt_address(const ServeOptions& options, std::uint16_t bound_port);

// How many HTTP connections serve holds at once: --max-connections, or (0) what the open-file
// limit leaves (io::connections_for_fd_limit) up to kDefaultMaxConnections. A --max-connections
// the limit cannot carry is lowered to it, with `warning` saying so: connections accepted past
// the limit would fail with EMFILE and hang in the listen backlog instead of being refused.
struct ConnectionCap {
    std::size_t max_connections = 0;
    std::string warning;  // empty: none
};
[[nodiscard]] ConnectionCap connection_cap(std::size_t requested, std::uint64_t fd_soft_limit);

// --bt-ssl, or --bt's host with the next port (any free port when --bt's port is 0).
std::string ssl_listen_for(const ServeOptions& options);

}  // namespace patchswarm::seeder
