// `patchswarm-seeder serve`: one process, one io_context. Seeds every release over libtorrent,
// and serves over HTTP (docs/PROTOCOL.md, "HTTP routes"): the signed feed with long-poll, the
// feed-key delegation, manifests, torrents, the payload as a BEP 19 web seed, the tracker, report
// intake into fleet.db, the fleet status and a health check.
//
// Driven by events (seeder/server.cpp wires them):
//   - index.json replaced by a publish: noticed by an inotify watch on the repository folder
//     (io/file_watch.hpp); the catalog reloads, the tracker and the seeded set follow, and the
//     feed is re-signed;
//   - a report that changes what a rollout reads, and fleet.db written by another process
//     (`patchswarm-seeder halt|resume`: the same watch sees its WAL change, and SQLite's
//     data_version tells another connection's commit from our own): the staged rollouts are
//     evaluated (seeder/rollout_controller.hpp) and the feed re-signed when a release's open
//     rings or the halted set change;
//   - a root rotation (root/ and keys/ are watched): the feed is signed with the new feed key.
// Timers: the feed is re-signed at half its lifetime (one-shot); the rollout controller arms a
// one-shot for the next instant a time rule (soak, deadline, staleness) can change a verdict;
// and every kMaintenance a coarse re-check catches what a missed file event would have said
// (and expires tracker peers, renews the seeder's own certificate). GET /metrics answers in the
// Prometheus text format; GET / and GET /dashboard the read-only dashboard page
// (seeder/dashboard.hpp), which polls GET /v1/status.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "io/env.hpp"
#include "seeder/admin_auth.hpp"
#include "seeder/tracker.hpp"

namespace patchswarm::seeder {

struct ServeOptions {
    std::filesystem::path repo;
    std::string http = "127.0.0.1:8080";  // HTTP listen address
    std::string bt = "127.0.0.1:6881";    // BitTorrent listen address
    // Address the tracker hands to peers for the seeder itself (default: --bt, with the port
    // actually bound). Required when --bt listens on 0.0.0.0 or ::.
    std::string bt_public;
    // SSL (TLS) BitTorrent listen address, used when the repository has a fleet CA (SSL
    // torrents). Default: --bt's host with --bt's port + 1.
    std::string bt_ssl;
    std::chrono::seconds feed_expiry{86'400};
    // Sites, "NAME=CIDR[,CIDR...]" each (core/sites.hpp); addresses outside them form one
    // site per /24 (IPv6: /64).
    std::vector<std::string> sites;
    std::size_t gateways =
        tracker::kDefaultGateways;        // peers per site (and torrent) given the seeder
    std::chrono::seconds site_stall{30};  // no progress this long: the whole site gets it
    int site_upload_limit = 0;            // bytes/s per configured site, 0 = none
    // An endpoint silent for longer is stale: not reachable for ring thresholds, shown as
    // stale by status (saved in fleet.db for `status`).
    std::chrono::seconds stale_after{300};
    // The admin credential for the fleet view (dashboard, /v1/status, /metrics): asked of
    // clients beyond loopback (remote) or of every client (always). The token file defaults to
    // REPO/keys/admin.token, created on first start.
    AdminAuth admin_auth = AdminAuth::remote;
    std::filesystem::path admin_token_file;
    // Requests per client (IPv4 address or IPv6 /64): sustained rate and burst; 0 = no limit.
    // A branch behind one NAT address is one client: its endpoints' long-polls, reports and
    // announces add up (1000 endpoints: about 60 requests/s, 1000 open long-polls), hence the
    // generous defaults; raise them for bigger NATed sites, or give the site a relay.
    double rate_limit = 200;
    double rate_burst = 2000;
    std::size_t max_connections_per_client = 1024;
    // Open HTTP connections in all (each endpoint holds one feed long-poll); 0: sized from the
    // open-file limit, which serve raises to its hard limit (seeder/serve_setup.hpp,
    // connection_cap).
    std::size_t max_connections = 0;
    // Lifetime of the endpoint certificates the fleet CA issues (endpoints renew at half of
    // it): how long a revoked device can stay in the SSL swarm at most.
    std::chrono::seconds cert_lifetime{7 * 86'400};
};

inline constexpr std::size_t kMaxGateways = 1000;

// The default connection cap when the open-file limit allows more: ~10 KiB each (Beast buffers,
// the session, a pending long-poll), so 100,000 stay well inside the seeder's memory.
inline constexpr std::size_t kDefaultMaxConnections = 100'000;

// The coarse re-check: a file event the watch missed costs at most this long.
inline constexpr std::chrono::seconds kMaintenance{30};

inline constexpr std::chrono::seconds kMinCertLifetime{20};
inline constexpr std::chrono::seconds kMaxCertLifetime{365 * 86'400};
inline constexpr std::chrono::seconds kMinFeedExpiry{60};
inline constexpr std::chrono::seconds kMaxFeedExpiry{7 * 86'400};

// Runs until SIGINT or SIGTERM, then saves libtorrent resume data and returns. Throws
// std::invalid_argument for bad options (a site that does not parse) and std::runtime_error for
// start-up failures (repository not initialised, address in use, database cannot be opened);
// nothing escapes once it is running. The site definitions are saved in fleet.db, so that
// `status` groups endpoints the same way. `env` gives the clock; it must outlive the call.
void serve(const ServeOptions& options, io::Env& env);

}  // namespace patchswarm::seeder
