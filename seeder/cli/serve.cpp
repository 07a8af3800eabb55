// patchswarm-seeder serve: the seeder itself.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

#include "core/rollout.hpp"
#include "core/sites.hpp"
#include "crypto/crypto.hpp"
#include "io/cli_config.hpp"
#include "io/env.hpp"
#include "io/key_files.hpp"
#include "io/logging.hpp"
#include "io/term.hpp"
#include "seeder/cli/commands.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/halt.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "seeder/server.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"

namespace patchswarm::seeder::cli {

namespace {

// ---- serve -----------------------------------------------------------------------------------

struct ServeArgs {
    seeder::ServeOptions opts;
    std::string repo;
    std::uint32_t feed_expiry_s = 86'400;
    std::uint32_t site_stall_s = 30;
    std::uint32_t stale_after_s = 300;
    std::uint32_t cert_lifetime_s = 7 * 86'400;
    std::string admin_auth = "remote";
    std::string admin_token_file;
    std::string log_level = "info";
};

void add_serve(CLI::App& app, ServeArgs& a) {
    auto* cmd = app.add_subcommand(
        "serve",
        "Serve the repository: seed every release over BitTorrent; serve the signed feed "
        "(long-poll), manifests, torrents, the payload as a web seed, the tracker, report intake "
        "and fleet status over HTTP. Runs until SIGINT/SIGTERM.");
    cmd->add_option("--repo", a.repo, "repository folder (initialised by publish)")->required();
    cmd->add_option("--http", a.opts.http, "HTTP listen address host:port")->capture_default_str();
    cmd->add_option("--bt", a.opts.bt, "BitTorrent listen address host:port")
        ->capture_default_str();
    cmd->add_option("--bt-public", a.opts.bt_public,
                    "address the tracker gives peers for this seeder (default: --bt; needed when "
                    "--bt is 0.0.0.0)");
    cmd->add_option("--bt-ssl", a.opts.bt_ssl,
                    "SSL BitTorrent listen address host:port, used when the repository has a "
                    "fleet CA (default: --bt's host, --bt's port + 1)");
    cmd->add_option("--feed-expiry", a.feed_expiry_s,
                    "feed lifetime in seconds; re-signed at half of it")
        ->check(CLI::Range(60u, 604'800u))
        ->capture_default_str();
    cmd->add_option("--site", a.opts.sites, kSiteHelp)->take_all();
    cmd->add_option("--gateways", a.opts.gateways,
                    "peers per site (and release) that get the seeder's address and web seed")
        ->check(CLI::Range(std::size_t{0}, seeder::kMaxGateways))
        ->capture_default_str();
    cmd->add_option("--site-stall", a.site_stall_s,
                    "seconds without progress in a site before every peer there gets the seeder")
        ->check(CLI::Range(1u, 86'400u))
        ->capture_default_str();
    cmd->add_option("--site-upload-limit", a.opts.site_upload_limit,
                    "upload cap in bytes/s towards each configured site (0: none)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--stale-after", a.stale_after_s,
                    "seconds without a report after which an endpoint is stale (offline): not "
                    "counted in ring thresholds, never counted effective")
        ->check(CLI::Range(1u, 30u * 86'400u))
        ->capture_default_str();
    cmd->add_option("--cert-lifetime", a.cert_lifetime_s,
                    "seconds an endpoint certificate is valid; endpoints renew at half of it. A "
                    "revoked device (device revoke) leaves the SSL swarm when its last one expires")
        ->check(CLI::Range(static_cast<std::uint32_t>(seeder::kMinCertLifetime.count()),
                           static_cast<std::uint32_t>(seeder::kMaxCertLifetime.count())))
        ->capture_default_str();
    cmd->add_option("--admin-auth", a.admin_auth,
                    "who must present the admin credential for the dashboard, /v1/status and "
                    "/metrics: 'remote' (clients beyond loopback) or 'always'")
        ->check(CLI::IsMember({"remote", "always"}))
        ->capture_default_str();
    cmd->add_option("--admin-token-file", a.admin_token_file,
                    "file holding the admin token, sent as 'Authorization: Bearer TOKEN' or as "
                    "the HTTP Basic password (default: REPO/keys/admin.token, created with a "
                    "random token, mode 0600)");
    cmd->add_option("--rate-limit", a.opts.rate_limit,
                    "HTTP requests per second per client (IPv4 address or IPv6 /64) once its "
                    "burst is used; more get 429 (0: no limit). A site behind one NAT address is "
                    "one client: about 0.06 requests/s per endpoint there")
        ->check(CLI::Range(0.0, 1e6))
        ->capture_default_str();
    cmd->add_option("--rate-burst", a.opts.rate_burst,
                    "HTTP requests a quiet client may make at once")
        ->check(CLI::Range(1.0, 1e7))
        ->capture_default_str();
    cmd->add_option("--max-connections-per-client", a.opts.max_connections_per_client,
                    "open HTTP connections per client; more are closed at once (each endpoint "
                    "holds one feed long-poll: a NATed site needs one per endpoint)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{100'000}))
        ->capture_default_str();
    cmd->add_option("--max-connections", a.opts.max_connections,
                    "open HTTP connections in all; more are closed at once (each endpoint holds "
                    "one feed long-poll). 0: what the open-file limit leaves, which serve raises "
                    "to its hard limit (up to 100000); a larger number than the limit allows is "
                    "lowered to it with a warning")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1'000'000}))
        ->capture_default_str();
    cmd->add_option("--log-level", a.log_level,
                    std::string(io::logging::kLevelHelp) + " (any case)")
        ->transform(io::cli::log_level_transform())
        ->capture_default_str();
}

int run_serve(ServeArgs& a, io::Env& env) {
    if (auto ok = io::logging::setup(a.log_level); !ok) return fail_with(ok.error());
    a.opts.repo = a.repo;
    a.opts.feed_expiry = std::chrono::seconds(a.feed_expiry_s);
    a.opts.site_stall = std::chrono::seconds(a.site_stall_s);
    a.opts.stale_after = std::chrono::seconds(a.stale_after_s);
    a.opts.cert_lifetime = std::chrono::seconds(a.cert_lifetime_s);
    a.opts.admin_auth =
        a.admin_auth == "always" ? seeder::AdminAuth::always : seeder::AdminAuth::remote;
    a.opts.admin_token_file = a.admin_token_file;
    seeder::serve(a.opts, env);
    return kExitOk;
}

}  // namespace

CommandGroup serve_commands() {
    auto a = std::make_shared<ServeArgs>();
    return {{"serve"},
            [=](CLI::App& app) { add_serve(app, *a); },
            [=](CLI::App&, io::Env& env) { return run_serve(*a, env); }};
}

}  // namespace patchswarm::seeder::cli
