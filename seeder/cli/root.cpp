// patchswarm-seeder root init / rotate / sign: the trust root's documents.
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
#include "seeder/cli/commands.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/halt.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"

namespace patchswarm::seeder::cli {

namespace {

// ---- root ------------------------------------------------------------------------------------

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

int run_root(const RootArgs& a, io::Env& env) {
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
        status = seeder::root_init(r, env.now_unix());
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
        status = seeder::root_rotate(r, env.now_unix());
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

}  // namespace

CommandGroup root_commands() {
    auto a = std::make_shared<RootArgs>();
    return {{"root"},
            [=](CLI::App& app) { add_root(app, *a); },
            [=](CLI::App&, io::Env& env) { return run_root(*a, env); }};
}

}  // namespace patchswarm::seeder::cli
