// patchswarm-seeder publish: a payload into a signed release.
#include "seeder/publish.hpp"

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
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"

namespace patchswarm::seeder::cli {

namespace {

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
    cmd->add_flag("--idempotent", r.idempotent,
                  "the install may safely run again over a half-finished run of itself: an "
                  "installer that died (killed, power loss) is re-run with a counted attempt "
                  "instead of waiting for an operator. Signed into the manifest");
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

int run_publish(PublishArgs& a, io::Env& env) {
    if (a.commit) {
        seeder::PublishCommitRequest c;
        c.repo = a.repo;
        c.id = a.req.id;
        c.release_keys.assign(a.keys.begin(), a.keys.end());
        c.merge.assign(a.merge.begin(), a.merge.end());
        c.replace = a.req.replace;
        auto result = seeder::publish_commit(c, env.now_unix());
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
    auto result = seeder::publish(a.req, env.now_unix());
    if (!result) return fail_with(result.error());
    std::cout << seeder::to_json_line(*result) << "\n";
    return kExitOk;
}

}  // namespace

CommandGroup publish_commands() {
    auto a = std::make_shared<PublishArgs>();
    return {{"publish"},
            [=](CLI::App& app) { add_publish(app, *a); },
            [=](CLI::App&, io::Env& env) { return run_publish(*a, env); }};
}

}  // namespace patchswarm::seeder::cli
