// patchswarm-seeder: command-line wiring only. Each subcommand calls into the seeder library;
// errors become one line on stderr and an exit code (0 ok, 2 usage error, 1 anything else).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

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
#include "io/term.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "seeder/server.hpp"
#include "seeder/status.hpp"

namespace {

namespace seeder = patchswarm::seeder;
using patchswarm::Errc;
using patchswarm::Error;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::int64_t now_unix() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

int fail_with(const Error& e) {
    std::cerr << "patchswarm-seeder: " << e.message << "\n";
    return e.code == Errc::invalid_argument ? kExitUsage : kExitFailure;
}

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("seeder");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(level));
}

const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "off"};

// ---- keygen ----------------------------------------------------------------------------------

struct KeygenArgs {
    std::string out;
};

void add_keygen(CLI::App& app, KeygenArgs& a) {
    auto* cmd = app.add_subcommand("keygen",
                                   "Create an Ed25519 key pair: OUT.key (mode 0600) and "
                                   "OUT.pub. Refuses to overwrite either file.");
    cmd->add_option("--out", a.out, "file name base, e.g. keys/release")->required();
}

int run_keygen(const KeygenArgs& a) {
    if (auto ok = seeder::keygen(a.out); !ok) return fail_with(ok.error());
    auto pub = patchswarm::io::load_public_key(a.out + ".pub");
    std::cout << a.out << ".key " << a.out << ".pub";
    if (pub) std::cout << " keyid " << patchswarm::crypto::key_id(*pub);
    std::cout << "\n";
    return kExitOk;
}

// ---- publish ---------------------------------------------------------------------------------

struct PublishArgs {
    seeder::PublishRequest req;
    std::string repo, payload;
    std::vector<std::string> keys, merge;
    std::optional<std::string> verify, repo_name, rollout, deadline;
    bool commit = false;
};

void add_publish(CLI::App& app, PublishArgs& a) {
    auto* cmd = app.add_subcommand(
        "publish",
        "Sign a payload folder (or file) as a release: copies it into the repository, builds a "
        "BitTorrent v2 torrent, signs the manifest with each --key and updates the index once "
        "a threshold of the root's release keys has signed. With --stage the release is kept "
        "in staged/ID to gather signatures (`sign`), then published with --commit. The "
        "repository needs a root document (`root init`). Prints the release as one JSON line.");
    auto& r = a.req;
    cmd->add_option("--repo", a.repo, "repository folder")->required();
    cmd->add_option("--key", a.keys,
                    "release secret key file (from keygen); repeat for several release keys")
        ->take_all();
    cmd->add_option("--id", r.id, "release id, [A-Za-z0-9._-]{1,64}, e.g. MS08-067")->required();
    auto* stage = cmd->add_flag("--stage", r.stage,
                                "build and sign with the --key files given (maybe none), keep it "
                                "in staged/ID without publishing");
    auto* commit = cmd->add_flag(
        "--commit", a.commit,
        "publish staged/ID, adding --key and --merge signatures, once the threshold is met");
    cmd->add_option("--merge", a.merge,
                    "with --commit: a copy of staged/ID/manifest.json signed elsewhere (`sign`); "
                    "repeatable")
        ->take_all()
        ->needs(commit);
    stage->excludes(commit);
    auto* payload = cmd->add_option("--payload", a.payload, "file or folder to publish");
    auto* install = cmd->add_option(
        "--install", r.install,
        "install command, run in the release folder. Split into arguments at spaces; "
        "'...' and \"...\" keep spaces; no shell is involved (no $VARS, globs, pipes or "
        "backslash escapes)");
    commit->excludes(payload)->excludes(install);
    cmd->add_option("--verify", a.verify,
                    "command that proves the patch is in effect (split like --install)");
    cmd->add_option("--severity", r.severity, "low, normal, important, critical or emergency")
        ->check(CLI::IsMember({"low", "normal", "important", "critical", "emergency"}))
        ->capture_default_str();
    cmd->add_option("--reboot", r.reboot,
                    "required, none, or if_needed (the install's exit code 3010 decides)")
        ->check(CLI::IsMember({"required", "none", "if_needed"}))
        ->capture_default_str();
    cmd->add_option("--timeout", r.install_timeout_s, "install time limit in seconds")
        ->check(CLI::Range(1u, 86'400u))
        ->capture_default_str();
    cmd->add_option("--verify-timeout", r.verify_timeout_s, "verify time limit in seconds")
        ->check(CLI::Range(1u, 86'400u))
        ->capture_default_str();
    cmd->add_option("--expires-days", r.expires_days, "days until the manifest expires")
        ->check(CLI::Range(1u, 3650u))
        ->capture_default_str();
    cmd->add_flag("--replace", r.replace, "replace a release id that is already published");
    cmd->add_option("--name-repo", a.repo_name,
                    "repository name when creating it (default: the folder's name)");
    cmd->add_option("--rollout", a.rollout,
                    "staged rollout policy, a JSON file: rings (by group, device id or fleet "
                    "percent, with success threshold, soak and maximum failure rate), "
                    "maintenance windows per group and a deadline; or one such policy per "
                    "severity plus \"default\" (docs/PROTOCOL.md, \"Rollout policy file\"). "
                    "Signed into the manifest");
    cmd->add_option("--deadline", a.deadline,
                    "rollout deadline: after it every ring is open and endpoints install and "
                    "reboot whatever their window or deferral. Unix seconds, UTC like "
                    "2025-03-09T07:00:00Z, or +N followed by s, m, h or d (from now); "
                    "overrides the policy file's");
}

int run_publish(PublishArgs& a) {
    if (a.commit) {
        seeder::PublishCommitRequest c;
        c.repo = a.repo;
        c.id = a.req.id;
        c.release_keys.assign(a.keys.begin(), a.keys.end());
        c.merge.assign(a.merge.begin(), a.merge.end());
        c.replace = a.req.replace;
        auto result = seeder::publish_commit(c, now_unix());
        if (!result) return fail_with(result.error());
        std::cout << seeder::to_json_line(*result) << "\n";
        return kExitOk;
    }
    if (a.payload.empty() || a.req.install.empty()) {
        return fail_with(Error{Errc::invalid_argument, "publish needs --payload and --install"});
    }
    a.req.repo = a.repo;
    a.req.release_keys.assign(a.keys.begin(), a.keys.end());
    a.req.payload = a.payload;
    a.req.verify = a.verify;
    a.req.repo_name = a.repo_name;
    if (a.rollout) a.req.rollout_file = *a.rollout;
    a.req.deadline = a.deadline;
    auto result = seeder::publish(a.req, now_unix());
    if (!result) return fail_with(result.error());
    std::cout << seeder::to_json_line(*result) << "\n";
    return kExitOk;
}

// ---- root ------------------------------------------------------------------------------------

constexpr const char* kFleetCaName = "patchswarm fleet CA";

struct RootArgs {
    std::string repo;
    std::vector<std::string> root_pubs, release_pubs, keys, merge;
    std::uint32_t root_threshold = 1, release_threshold = 1;
    std::optional<std::string> feed_pub, repo_name;
    std::uint32_t expires_days = seeder::kDefaultRootExpiresDays;
    bool new_feed_key = false;
    bool no_fleet_ca = false;
    CLI::App* init = nullptr;
    CLI::App* rotate = nullptr;
    CLI::App* sign = nullptr;
    // rotate's options (added last): a rotation keeps the current threshold unless given.
    CLI::Option* root_threshold_opt = nullptr;
    CLI::Option* release_threshold_opt = nullptr;
};

void add_root(CLI::App& app, RootArgs& a) {
    auto* root = app.add_subcommand(
        "root",
        "The repository's root document: which keys sign roots, releases and the feed, each "
        "with a threshold. Endpoints pin root/1.json (patchswarmd run --trust) and follow every "
        "later version. A version is staged until a threshold of root keys has signed it (and, "
        "for a rotation, a threshold of the previous version's root keys too); then it is "
        "committed as root/N.json. Prints the version's state as one JSON line.");
    root->require_subcommand(1);
    a.init = root->add_subcommand(
        "init",
        "stage (and sign) root version 1 of a new repository, and create its fleet CA (only "
        "enrolled endpoints take part: see ca, token and patchswarmd enroll)");
    a.init->add_flag("--no-fleet-ca", a.no_fleet_ca,
                     "no fleet CA: releases are plain torrents any machine that reaches the "
                     "swarm can join, and the seeder takes reports from any device (ca init "
                     "turns enrolment on later)");
    a.rotate = root->add_subcommand("rotate",
                                    "stage version N+1: the current roles with the changes given");
    a.sign = root->add_subcommand(
        "sign", "add signatures to the staged version; commits it once the thresholds are met");
    for (auto* cmd : {a.init, a.rotate, a.sign}) {
        cmd->add_option("--repo", a.repo, "repository folder")->required();
        cmd->add_option("--key", a.keys, "root secret key to sign with (repeatable)")->take_all();
    }
    for (auto* cmd : {a.init, a.rotate}) {
        auto* rp = cmd->add_option("--root-pub", a.root_pubs,
                                   "root public key file (repeatable): the root role's keys")
                       ->take_all();
        a.root_threshold_opt =
            cmd->add_option("--root-threshold", a.root_threshold,
                            "root signatures required (init: 1 by default; rotate: unchanged "
                            "by default)")
                ->check(CLI::Range(1u, 8u));
        auto* lp = cmd->add_option("--release-pub", a.release_pubs,
                                   "release public key file (repeatable): the keys that sign "
                                   "manifests")
                       ->take_all();
        a.release_threshold_opt =
            cmd->add_option("--release-threshold", a.release_threshold,
                            "release signatures required per manifest (init: 1 "
                            "by default; rotate: unchanged by default)")
                ->check(CLI::Range(1u, 8u));
        cmd->add_option("--expires-days", a.expires_days, "days until this root version expires")
            ->check(CLI::Range(1u, seeder::kMaxRootExpiresDays))
            ->capture_default_str();
        if (cmd == a.init) {
            rp->required();
            lp->required();
            cmd->add_option("--feed-pub", a.feed_pub,
                            "the online feed key's .pub; its .key must then be installed as "
                            "REPO/keys/feed.key for serve (default: REPO/keys/feed.key, created if "
                            "missing)");
            cmd->add_option("--name-repo", a.repo_name,
                            "repository name (default: the folder's name)");
        }
    }
    a.rotate->add_flag("--new-feed-key", a.new_feed_key,
                       "create a new online feed key; `serve` switches to it when the version "
                       "is committed, and endpoints drop their old feed state");
    a.sign
        ->add_option("--merge", a.merge,
                     "a copy of root/staged.json signed elsewhere (`sign`); repeatable")
        ->take_all();
}

std::vector<std::filesystem::path> paths_of(const std::vector<std::string>& v) {
    return {v.begin(), v.end()};
}

int run_root(const RootArgs& a) {
    patchswarm::Result<seeder::RootStatus> status;
    if (*a.init) {
        seeder::RootInitRequest r;
        r.repo = a.repo;
        r.root_public_keys = paths_of(a.root_pubs);
        r.root_threshold = a.root_threshold;
        r.release_public_keys = paths_of(a.release_pubs);
        r.release_threshold = a.release_threshold;
        if (a.feed_pub) r.feed_public_key = *a.feed_pub;
        r.expires_days = a.expires_days;
        r.sign_keys = paths_of(a.keys);
        r.repo_name = a.repo_name;
        status = seeder::root_init(r, now_unix());
        if (status && !a.no_fleet_ca) {
            const seeder::RepoPaths paths(a.repo);
            if (auto made = seeder::init_fleet_ca(paths, kFleetCaName); !made) {
                return fail_with(made.error());
            }
        }
    } else if (*a.rotate) {
        seeder::RootRotateRequest r;
        r.repo = a.repo;
        r.root_public_keys = paths_of(a.root_pubs);
        if (a.root_threshold_opt->count() > 0) r.root_threshold = a.root_threshold;
        r.release_public_keys = paths_of(a.release_pubs);
        if (a.release_threshold_opt->count() > 0) r.release_threshold = a.release_threshold;
        r.new_feed_key = a.new_feed_key;
        r.expires_days = a.expires_days;
        r.sign_keys = paths_of(a.keys);
        status = seeder::root_rotate(r, now_unix());
    } else {
        seeder::RootSignRequest r;
        r.repo = a.repo;
        r.sign_keys = paths_of(a.keys);
        r.merge = paths_of(a.merge);
        status = seeder::root_sign(r);
    }
    if (!status) return fail_with(status.error());
    std::cout << seeder::to_json_line(*status) << "\n";
    return kExitOk;
}

// ---- sign ------------------------------------------------------------------------------------

struct SignArgs {
    std::string key, file;
};

void add_sign(CLI::App& app, SignArgs& a) {
    auto* cmd = app.add_subcommand(
        "sign",
        "Offline signing: add your signature to a staged manifest (staged/ID/manifest.json) or "
        "root (root/staged.json) copied to this machine; hand the file back for `publish "
        "--commit --merge FILE` or `root sign --merge FILE`. Prints what was signed.");
    cmd->add_option("--key", a.key, "your secret key file")->required();
    cmd->add_option("file", a.file, "the envelope file, signed in place")->required();
}

int run_sign(const SignArgs& a) {
    auto what = seeder::sign_envelope_file(a.file, a.key);
    if (!what) return fail_with(what.error());
    std::cout << *what << "\n";
    return kExitOk;
}

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

constexpr const char* kSiteHelp =
    "a site (branch office) by its address ranges: NAME=CIDR[,CIDR...], e.g. "
    "branch1=10.77.1.0/24 (repeatable; in the config file a list: site = [\"a=...\", ...]). "
    "Addresses outside every site form one site per /24 (IPv6: /64)";

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
    cmd->add_option("--log-level", a.log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember(kLogLevels))
        ->capture_default_str();
}

int run_serve(ServeArgs& a) {
    spdlog::set_level(spdlog::level::from_str(a.log_level));
    a.opts.repo = a.repo;
    a.opts.feed_expiry = std::chrono::seconds(a.feed_expiry_s);
    a.opts.site_stall = std::chrono::seconds(a.site_stall_s);
    a.opts.stale_after = std::chrono::seconds(a.stale_after_s);
    a.opts.cert_lifetime = std::chrono::seconds(a.cert_lifetime_s);
    a.opts.admin_auth =
        a.admin_auth == "always" ? seeder::AdminAuth::always : seeder::AdminAuth::remote;
    a.opts.admin_token_file = a.admin_token_file;
    const auto env = patchswarm::io::make_posix_env();
    seeder::serve(a.opts, *env);
    return kExitOk;
}

// ---- ca / token (enrolment) ------------------------------------------------------------------

struct EnrolArgs {
    std::string repo;
    std::string ca_name = kFleetCaName;
    std::int64_t uses = 1;
    std::string expires;
    std::string label;
    std::string revoke_id;
    CLI::App* ca_init = nullptr;
    CLI::App* create = nullptr;
    CLI::App* list = nullptr;
    CLI::App* revoke = nullptr;
    CLI::App* device_list = nullptr;
    CLI::App* device_revoke = nullptr;
    bool with_token = false;
};

void add_enrolment(CLI::App& app, EnrolArgs& a) {
    auto* ca = app.add_subcommand(
        "ca",
        "The fleet CA. A repository with one publishes SSL torrents and serves enrolled "
        "endpoints only (swarm, web seed, reports)");
    ca->require_subcommand(1);
    a.ca_init = ca->add_subcommand(
        "init",
        "create keys/fleet-ca.key (0600) and keys/fleet-ca.pem unless they exist: enrolment is "
        "on from then (releases published before stay plain torrents)");
    a.ca_init->add_option("--repo", a.repo, "repository folder")->required();
    a.ca_init->add_option("--name", a.ca_name, "the CA's common name")->capture_default_str();

    auto* token = app.add_subcommand(
        "token", "Enrolment tokens for `patchswarmd enroll --token` / `run --enroll-token`");
    token->require_subcommand(1);
    a.create = token->add_subcommand(
        "create", "print a new token once (only its public key is stored; endpoints sign with it)");
    a.create->add_option("--repo", a.repo, "repository folder")->required();
    a.create->add_option("--uses", a.uses, "how many endpoints may enrol with it")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000}))
        ->capture_default_str();
    a.create->add_option("--expires", a.expires,
                         "when it stops working: +N with s, m, h or d, unix seconds or UTC "
                         "(default: never)");
    a.create->add_option("--label", a.label, "a note shown by token list");
    a.list = token->add_subcommand("list", "list tokens (id, state, uses, expiry, label)");
    a.list->add_option("--repo", a.repo, "repository folder")->required();
    a.revoke = token->add_subcommand("revoke", "revoke a token by its id (token list)");
    a.revoke->add_option("ID", a.revoke_id, "token id or a prefix of at least 6 characters")
        ->required();
    a.revoke->add_option("--repo", a.repo, "repository folder")->required();

    auto* device = app.add_subcommand("device", "Enrolled endpoints");
    device->require_subcommand(1);
    a.device_list = device->add_subcommand(
        "list",
        "list enrolled devices (id, state, certificate expiry, address, name, token id and label)");
    a.device_list->add_option("--repo", a.repo, "repository folder")->required();
    a.device_revoke = device->add_subcommand(
        "revoke",
        "revoke a device: its reports, web seed requests and certificate renewals are refused "
        "at once; it leaves the SSL swarm when its certificate expires (serve --cert-lifetime)");
    a.device_revoke->add_option("ID", a.revoke_id, "device id or a prefix of at least 6 characters")
        ->required();
    a.device_revoke->add_option("--repo", a.repo, "repository folder")->required();
    a.device_revoke->add_flag(
        "--with-token", a.with_token,
        "revoke the token it enrolled with too: a token left on a stolen machine would enrol it "
        "again under a new device key (other devices enrolled with it stay enrolled)");
}

int run_devices(const EnrolArgs& a, seeder::EnrolmentDb& db, std::int64_t now) {
    if (a.device_revoke->parsed()) {
        auto r = db.revoke_device(a.revoke_id, a.with_token, now);
        if (!r) return fail_with(r.error());
        std::cout << r->device_id << (r->already ? ": already revoked" : ": revoked");
        if (a.with_token && !r->token_id.empty())
            std::cout << "; token " << r->token_id << " revoked";
        std::cout << "\n";
        return kExitOk;
    }
    auto rows = db.devices();
    if (!rows) return fail_with(rows.error());
    for (const auto& d : *rows) {
        const char* state = d.revoked_at != 0         ? "revoked"
                            : d.cert_not_after <= now ? "expired"
                                                      : "active";
        std::cout << d.device_id.substr(0, 16) << "  " << state << "  certificate until "
                  << (d.cert_not_after ? patchswarm::core::format_utc(d.cert_not_after)
                                       : std::string("?"))
                  << "  " << d.remote_address << "  " << d.hostname << "  token "
                  << (d.token_id.empty() ? std::string("?") : d.token_id) << " (" << d.token_label
                  << ")\n";
    }
    return kExitOk;
}

int run_enrolment(const EnrolArgs& a) {
    const seeder::RepoPaths paths(a.repo);
    if (a.ca_init->parsed()) {
        auto made = seeder::init_fleet_ca(paths, a.ca_name);
        if (!made) return fail_with(made.error());
        std::cout << (*made ? "created " : "kept existing ")
                  << seeder::fleet_ca_cert(paths).string() << "\n";
        return kExitOk;
    }
    auto db = seeder::EnrolmentDb::open(paths.fleet_db());
    if (!db) return fail_with(db.error());
    const std::int64_t now = now_unix();
    if (a.device_list->parsed() || a.device_revoke->parsed()) return run_devices(a, **db, now);
    if (a.create->parsed()) {
        auto ca = seeder::load_fleet_ca(paths);
        if (!ca) return fail_with(ca.error());
        if (!*ca) {
            return fail_with(
                Error{Errc::invalid_argument, "the repository has no fleet CA: run ca init first"});
        }
        std::int64_t expires = 0;
        if (!a.expires.empty()) {
            auto t = patchswarm::core::parse_time_spec(a.expires, now);
            if (!t) {
                return fail_with(Error{Errc::invalid_argument, "--expires: " + t.error().message});
            }
            expires = *t;
        }
        auto token = (*db)->create_token(a.uses, expires, a.label, now);
        if (!token) return fail_with(token.error());
        std::cout << token->token << "\n";
        std::cerr << "token " << token->id << ": " << a.uses << " use(s), "
                  << (expires ? "expires " + patchswarm::core::format_utc(expires)
                              : std::string("never expires"))
                  << "; it is not shown again\n";
        return kExitOk;
    }
    if (a.list->parsed()) {
        auto rows = (*db)->tokens();
        if (!rows) return fail_with(rows.error());
        for (const auto& t : *rows) {
            const bool expired = t.expires_at != 0 && now >= t.expires_at;
            const char* state = t.revoked         ? "revoked"
                                : t.uses_left < 1 ? "used-up"
                                : expired         ? "expired"
                                                  : "active";
            std::cout << t.id << "  " << state << "  used " << t.used << ", left " << t.uses_left
                      << "  expires "
                      << (t.expires_at ? patchswarm::core::format_utc(t.expires_at)
                                       : std::string("never"))
                      << "  " << t.label << "\n";
        }
        return kExitOk;
    }
    if (auto ok = (*db)->revoke(a.revoke_id); !ok) return fail_with(ok.error());
    std::cout << a.revoke_id << ": revoked\n";
    return kExitOk;
}

// ---- status ----------------------------------------------------------------------------------

struct StatusArgs {
    std::string repo;
    bool json = false;
    bool csv = false;
    std::optional<std::uint32_t> stale_after_s;
    std::vector<std::string> sites;
};

void add_status(CLI::App& app, StatusArgs& a) {
    auto* cmd = app.add_subcommand(
        "status",
        "Fleet compliance per release from fleet.db and index.json (serve need not run): "
        "endpoints per state, how many are effective, bytes from peers vs. the seeder, and the "
        "endpoints not yet effective.");
    cmd->add_option("--repo", a.repo, "repository folder")->required();
    cmd->add_flag("--json", a.json,
                  "print the JSON document of GET /v1/status "
                  "(docs/STATUS_JSON.md)");
    auto* csv = cmd->add_flag("--csv", a.csv,
                              "print one CSV row per endpoint per release (compliance report): "
                              "release, device_id, hostname, site, groups, ring, state, since, "
                              "last_seen, effective, why");
    csv->excludes(cmd->get_option("--json"));
    cmd->add_option("--stale-after", a.stale_after_s,
                    "seconds without a report after which an endpoint counts as stale "
                    "(default: what serve last ran with, else 300)")
        ->check(CLI::Range(1u, 30u * 86'400u));
    cmd->add_option("--site", a.sites,
                    std::string(kSiteHelp) + "; default: the sites serve last ran with")
        ->take_all();
}

// ---- halt / resume ---------------------------------------------------------------------------

struct HaltArgs {
    std::string repo, id, reason;
};

void add_halt(CLI::App& app, HaltArgs& h, HaltArgs& r) {
    auto* halt = app.add_subcommand(
        "halt",
        "Halt a release: the signed feed lists it as halted, and endpoints that have not "
        "installed it stop there (serve re-signs the feed within a second; works whether or "
        "not serve runs).");
    halt->add_option("ID", h.id, "release id")->required();
    halt->add_option("--repo", h.repo, "repository folder")->required();
    halt->add_option("--reason", h.reason, "why, shown by status");
    auto* resume = app.add_subcommand(
        "resume",
        "Lift a halt (automatic or by hand). Failures reported before the resume no longer "
        "count towards auto-halt.");
    resume->add_option("ID", r.id, "release id")->required();
    resume->add_option("--repo", r.repo, "repository folder")->required();
}

int run_status(const StatusArgs& a) {
    std::optional<patchswarm::core::SiteMap> sites;
    if (!a.sites.empty()) {
        auto map = patchswarm::core::SiteMap::parse(a.sites);
        if (!map) return fail_with(Error{Errc::invalid_argument, "--site: " + map.error().message});
        sites = std::move(*map);
    }
    std::optional<std::int64_t> stale_after;
    if (a.stale_after_s) stale_after = *a.stale_after_s;
    auto status = seeder::collect_status(seeder::RepoPaths(a.repo), nullptr, now_unix(),
                                         sites ? &*sites : nullptr, stale_after);
    if (!status) return fail_with(status.error());
    if (a.csv) {
        std::cout << seeder::status_csv(*status);
    } else if (a.json) {
        std::cout << seeder::status_json(*status) << "\n";
    } else {
        std::cout << seeder::render_status(*status, patchswarm::io::term::stdout_is_tty());
    }
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"patchswarm-seeder: signs releases and serves them to the fleet."};
    patchswarm::io::cli::add_config_option(app, argc, argv,
                                           {"keygen", "root", "sign", "publish", "serve", "status",
                                            "halt", "resume", "ca", "token", "device"});
    app.require_subcommand(1);

    KeygenArgs keygen;
    RootArgs root;
    SignArgs sign;
    PublishArgs publish;
    ServeArgs serve;
    StatusArgs status;
    HaltArgs halt, resume;
    EnrolArgs enrol;
    add_keygen(app, keygen);
    add_root(app, root);
    add_sign(app, sign);
    add_publish(app, publish);
    add_serve(app, serve);
    add_status(app, status);
    add_halt(app, halt, resume);
    add_enrolment(app, enrol);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "patchswarm-seeder: " << e.what() << " (see --help)\n";
        return kExitUsage;
    }

    try {
        patchswarm::crypto::init();
        setup_logging("info");
        if (app.got_subcommand("keygen")) return run_keygen(keygen);
        if (app.got_subcommand("root")) return run_root(root);
        if (app.got_subcommand("sign")) return run_sign(sign);
        if (app.got_subcommand("publish")) return run_publish(publish);
        if (app.got_subcommand("serve")) return run_serve(serve);
        if (app.got_subcommand("status")) return run_status(status);
        if (app.got_subcommand("ca") || app.got_subcommand("token") ||
            app.got_subcommand("device")) {
            return run_enrolment(enrol);
        }
        if (app.got_subcommand("halt")) {
            auto ok = seeder::halt_release(seeder::RepoPaths(halt.repo), halt.id, halt.reason,
                                           now_unix());
            if (!ok) return fail_with(ok.error());
            std::cout << halt.id << ": halted\n";
            return kExitOk;
        }
        if (app.got_subcommand("resume")) {
            auto ok = seeder::resume_release(seeder::RepoPaths(resume.repo), resume.id, now_unix());
            if (!ok) return fail_with(ok.error());
            std::cout << resume.id << ": resumed\n";
            return kExitOk;
        }
    } catch (const std::invalid_argument& e) {
        std::cerr << "patchswarm-seeder: " << e.what() << "\n";
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "patchswarm-seeder: " << e.what() << "\n";
        return kExitFailure;
    }
    return kExitUsage;
}
