// patchswarm-seeder ca / token / device: enrolment of endpoints.
#include "seeder/enrolment.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <nlohmann/json.hpp>
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
#include "seeder/halt.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"

namespace patchswarm::seeder::cli {

namespace {

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
    bool json = false;  // token list / device list --json
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
    a.list->add_flag("--json", a.json,
                     "print one JSON array: id, state, used, uses_left, expires_at (null: never), "
                     "label");
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
    a.device_list->add_flag("--json", a.json,
                            "print one JSON array: device_id, state, cert_not_after (null: "
                            "unknown), remote_address, hostname, token_id, token_label");
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
    auto out = nlohmann::json::array();
    for (const auto& d : *rows) {
        const char* state = d.revoked_at != 0         ? "revoked"
                            : d.cert_not_after <= now ? "expired"
                                                      : "active";
        if (a.json) {
            out.push_back({{"device_id", d.device_id},
                           {"state", state},
                           {"cert_not_after", d.cert_not_after ? nlohmann::json(d.cert_not_after)
                                                               : nlohmann::json(nullptr)},
                           {"remote_address", d.remote_address},
                           {"hostname", d.hostname},
                           {"token_id", d.token_id},
                           {"token_label", d.token_label}});
            continue;
        }
        std::cout << d.device_id.substr(0, 16) << "  " << state << "  certificate until "
                  << (d.cert_not_after ? patchswarm::core::format_utc(d.cert_not_after)
                                       : std::string("?"))
                  << "  " << d.remote_address << "  " << d.hostname << "  token "
                  << (d.token_id.empty() ? std::string("?") : d.token_id) << " (" << d.token_label
                  << ")\n";
    }
    // Strings from endpoints (hostname) may hold any UTF-8; replace what is not.
    if (a.json)
        std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
}

int run_enrolment(const EnrolArgs& a, io::Env& env) {
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
    const std::int64_t now = env.now_unix();
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
        auto out = nlohmann::json::array();
        for (const auto& t : *rows) {
            const bool expired = t.expires_at != 0 && now >= t.expires_at;
            const char* state = t.revoked         ? "revoked"
                                : t.uses_left < 1 ? "used-up"
                                : expired         ? "expired"
                                                  : "active";
            if (a.json) {
                out.push_back({{"id", t.id},
                               {"state", state},
                               {"used", t.used},
                               {"uses_left", t.uses_left},
                               {"expires_at", t.expires_at ? nlohmann::json(t.expires_at)
                                                           : nlohmann::json(nullptr)},
                               {"label", t.label}});
                continue;
            }
            std::cout << t.id << "  " << state << "  used " << t.used << ", left " << t.uses_left
                      << "  expires "
                      << (t.expires_at ? patchswarm::core::format_utc(t.expires_at)
                                       : std::string("never"))
                      << "  " << t.label << "\n";
        }
        if (a.json) {
            std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        }
        return kExitOk;
    }
    if (auto ok = (*db)->revoke(a.revoke_id); !ok) return fail_with(ok.error());
    std::cout << a.revoke_id << ": revoked\n";
    return kExitOk;
}

}  // namespace

CommandGroup enrolment_commands() {
    auto a = std::make_shared<EnrolArgs>();
    return {{"ca", "token", "device"},
            [=](CLI::App& app) { add_enrolment(app, *a); },
            [=](CLI::App&, io::Env& env) { return run_enrolment(*a, env); }};
}

}  // namespace patchswarm::seeder::cli
