// patchswarm-seeder status, halt, resume and retry: the fleet view and the rollout by hand.
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

struct RetryArgs {
    std::string repo, id;
    std::optional<std::string> device, site;
    bool failed = false;
};

void add_retry(CLI::App& app, RetryArgs& a) {
    auto* cmd = app.add_subcommand(
        "retry",
        "Re-arm endpoints whose release failed, also those that gave up: they try again from "
        "attempt 1 (carried in the signed feed, so only this seeder's feed key can ask; serve "
        "re-signs it within a second). Each endpoint honours a request once.");
    cmd->add_option("ID", a.id, "release id")->required();
    cmd->add_option("--repo", a.repo, "repository folder")->required();
    auto* device = cmd->add_option("--device", a.device, "only this device id (32 hex)");
    auto* failed = cmd->add_flag("--failed", a.failed, "every failed endpoint (the default)");
    auto* site = cmd->add_option("--site", a.site,
                                 "the endpoints of this site (as status names it) "
                                 "that are failed now");
    device->excludes(failed)->excludes(site);
    failed->excludes(site);
}

int run_retry(const RetryArgs& a, io::Env& env) {
    seeder::RetryScope scope;
    scope.device = a.device;
    scope.site = a.site;
    auto out = seeder::retry_release(seeder::RepoPaths(a.repo), a.id, scope, env.now_unix());
    if (!out) return fail_with(out.error());
    std::cout << a.id << ": retry " << out->generation << " asked of "
              << (out->devices.empty() ? std::string("every failed endpoint")
                                       : std::to_string(out->devices.size()) + " endpoint(s)")
              << "\n";
    return kExitOk;
}

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

int run_status(const StatusArgs& a, io::Env& env) {
    std::optional<patchswarm::core::SiteMap> sites;
    if (!a.sites.empty()) {
        auto map = patchswarm::core::SiteMap::parse(a.sites);
        if (!map) return fail_with(Error{Errc::invalid_argument, "--site: " + map.error().message});
        sites = std::move(*map);
    }
    std::optional<std::int64_t> stale_after;
    if (a.stale_after_s) stale_after = *a.stale_after_s;
    auto status = seeder::collect_status(seeder::RepoPaths(a.repo), nullptr, env.now_unix(),
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

int run_halt(const HaltArgs& halt, io::Env& env) {
    auto ok =
        seeder::halt_release(seeder::RepoPaths(halt.repo), halt.id, halt.reason, env.now_unix());
    if (!ok) return fail_with(ok.error());
    std::cout << halt.id << ": halted\n";
    return kExitOk;
}

int run_resume(const HaltArgs& resume, io::Env& env) {
    auto ok = seeder::resume_release(seeder::RepoPaths(resume.repo), resume.id, env.now_unix());
    if (!ok) return fail_with(ok.error());
    std::cout << resume.id << ": resumed\n";
    return kExitOk;
}

}  // namespace

CommandGroup status_commands() {
    auto status = std::make_shared<StatusArgs>();
    auto halt = std::make_shared<HaltArgs>();
    auto resume = std::make_shared<HaltArgs>();
    auto retry = std::make_shared<RetryArgs>();
    return {{"status", "halt", "resume", "retry"},
            [=](CLI::App& app) {
                add_status(app, *status);
                add_halt(app, *halt, *resume);
                add_retry(app, *retry);
            },
            [=](CLI::App& app, io::Env& env) {
                if (app.got_subcommand("retry")) return run_retry(*retry, env);
                if (app.got_subcommand("halt")) return run_halt(*halt, env);
                if (app.got_subcommand("resume")) return run_resume(*resume, env);
                return run_status(*status, env);
            }};
}

}  // namespace patchswarm::seeder::cli
