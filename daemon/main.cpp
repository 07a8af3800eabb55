// patchswarmd: the endpoint agent and its local CLI. main() only parses options and wires.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>

#include "base/text.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "core/sites.hpp"
#include "crypto/crypto.hpp"
#include "daemon/agent.hpp"
#include "daemon/control.hpp"
#include "daemon/enrol.hpp"
#include "daemon/status_view.hpp"
#include "io/cli_config.hpp"
#include "io/env.hpp"
#include "io/fs.hpp"
#include "io/logging.hpp"
#include "io/service_notify.hpp"
#include "io/supervise.hpp"
#include "io/term.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int run_agent(patchswarm::daemon::AgentConfig cfg) {
    namespace service = patchswarm::io::service;
    boost::asio::io_context io;
    // Signals are caught from before the agent opens its state, so a SIGTERM during start-up is
    // a clean shutdown too (handled once io.run() starts). SIGHUP must not end the agent:
    // systemd counts a death by SIGHUP as clean, and Restart=on-failure would leave it dead.
    boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
    const auto env = patchswarm::io::make_posix_env(cfg.boot_id_file);
    patchswarm::daemon::Agent agent(io, std::move(cfg), *env);
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                spdlog::info(
                    "SIGHUP: the configuration is read at start only; restart the "
                    "service to apply a changed file");
                wait_signal();
                return;
            }
            service::notify_stopping("stopping: saving resume data");
            agent.shutdown();
        });
    };
    wait_signal();
    agent.start();  // READY=1 once its sockets listen
    const service::Watchdog watchdog(io);
    io.run();
    return kExitOk;
}

std::string host_name(const std::string& configured) {
    if (!configured.empty()) return configured;
    return patchswarm::io::make_posix_env()->hostname();
}

// The host of "ip:port" when it is one specific address (the agent binds its HTTP client there).
std::string bind_host(const std::string& listen) {
    const auto colon = listen.rfind(':');
    const std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
    return host == "0.0.0.0" || host == "::" || host == "[::]" ? std::string() : host;
}

// A token file: the token, surrounding whitespace ignored.
patchswarm::Result<std::string> read_token_file(const std::string& path) {
    auto text = patchswarm::io::read_file(path, 1024);
    if (!text) return std::unexpected(text.error());
    return std::string(patchswarm::trim(*text, " \t\r\n"));
}

int run_enroll(patchswarm::daemon::EnrolOptions o) {
    auto id = patchswarm::daemon::enroll(o);
    if (!id) {
        std::cerr << "patchswarmd: " << id.error().message << "\n";
        return kExitFailure;
    }
    std::cout << "enrolled: certificate in " << (o.state_dir / "tls.crt").string() << "\n";
    return kExitOk;
}

// `status` and `defer` ask the running daemon over its control socket, so it learns of a
// deferral at once and nothing writes state.db behind its back. With no daemon answering they
// read or write state.db themselves, so a stopped endpoint can still be inspected and deferred.
// The output is the same either way.
int show_status(const std::string& state_dir, bool as_json) {
    auto answered = patchswarm::daemon::ask_daemon_status(state_dir);
    // A user the socket keeps out gets what state.db's permissions give them, as before.
    if (answered && !*answered && answered->error().code == patchswarm::Errc::permission) {
        answered.reset();
    }
    auto status = answered ? std::move(*answered) : patchswarm::daemon::endpoint_status(state_dir);
    if (!status) {
        std::cerr << "patchswarmd: " << status.error().message << "\n";
        return kExitFailure;
    }
    if (as_json) {
        std::cout << status->dump() << "\n";
    } else {
        std::cout << patchswarm::daemon::render_endpoint_status(
            *status, patchswarm::io::term::stdout_is_tty());
    }
    return kExitOk;
}

int run_defer(const std::string& dir, const std::string& id, const std::string& until_text,
              bool clear) {
    const std::int64_t now = patchswarm::io::make_posix_env()->now_unix();
    std::optional<std::int64_t> until;
    if (!clear) {
        if (until_text.empty()) {
            std::cerr << "patchswarmd: defer needs --until T or --clear\n";
            return kExitUsage;
        }
        auto t = patchswarm::core::parse_time_spec(until_text, now);
        if (!t) {
            std::cerr << "patchswarmd: --until: " << t.error().message << "\n";
            return kExitUsage;
        }
        until = *t;
    }
    // A malformed id names no release: state.db's lookup says so, as it always has.
    std::optional<patchswarm::Result<std::optional<std::int64_t>>> answered;
    if (patchswarm::core::validate_release_id(id)) {
        answered = patchswarm::daemon::ask_daemon_defer(dir, id, until);
    }
    auto stored =
        answered ? std::move(*answered) : patchswarm::daemon::defer_release(dir, id, until, now);
    if (!stored) {
        std::cerr << "patchswarmd: " << stored.error().message << "\n";
        return stored.error().code == patchswarm::Errc::invalid_argument ? kExitUsage
                                                                         : kExitFailure;
    }
    if (!*stored) {
        std::cout << id << ": deferral cleared\n";
    } else {
        std::cout << id << ": deferred until " << patchswarm::core::format_utc(**stored);
        if (**stored < *until) std::cout << " (the release's deadline; asked for later)";
        std::cout << "\n";
    }
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    // The install supervisor (io/supervise.hpp): the agent re-executes its own binary in this
    // mode, detached, with the install's lock on fd 3. Internal, not in --help; it takes no
    // options and reads no config file, so nothing but the agent's spec steers it.
    if (argc == 4 && std::string_view(argv[1]) == "supervise") {
        return patchswarm::io::supervise_main(argv[2], argv[3]);
    }
    CLI::App app{
        "patchswarmd: the patchswarm endpoint agent. Learns of signed releases, fetches\n"
        "them from LAN peers, verifies every byte, installs and reports."};
    patchswarm::io::cli::add_config_option(app);
    patchswarm::io::cli::add_version_flag(app, "patchswarmd");
    app.require_subcommand(1);

    patchswarm::daemon::AgentConfig cfg;
    std::string seeders;
    std::string trust;
    std::string log_level = "info";
    auto* run = app.add_subcommand("run", "run the agent in the foreground");
    run->add_option("--state-dir", cfg.state_dir, "folder for this endpoint's state")->required();
    run->add_option("--seeder", seeders,
                    "seeder base URL(s), comma-separated, tried in order "
                    "(e.g. http://hq:8080,http://relay:8090)")
        ->required();
    run->add_option("--trust", trust,
                    "pinned root document: the signed root.json from `patchswarm-seeder root "
                    "init` (repo/root/1.json). Newer root versions are fetched and followed")
        ->required()
        ->check(CLI::ExistingFile);
    run->add_option("--bt", cfg.bt_listen, "BitTorrent listen address ip:port")
        ->capture_default_str();
    run->add_option("--bt-ssl", cfg.bt_ssl_listen,
                    "SSL BitTorrent listen address ip:port for an enrolled fleet's SSL torrents "
                    "(default: --bt's address, --bt's port + 1)");
    std::string enroll_token;
    std::string enroll_token_file;
    auto* enroll_token_opt = run->add_option(
        "--enroll-token", enroll_token,
        "enrol at start with this token unless already enrolled (see enroll); other users can "
        "read it in the process list, --enroll-token-file cannot be");
    run->add_option("--enroll-token-file", enroll_token_file,
                    "as --enroll-token, the token read from this file")
        ->check(CLI::ExistingFile)
        ->excludes(enroll_token_opt);
    run->add_option("--relay", cfg.relay_listen,
                    "also serve the signed feed and manifests to LAN peers on ip:port");
    run->add_option("--name", cfg.name, "name reported to the seeder (default: host name)");
    run->add_option("--boot-id-file", cfg.boot_id_file, "file holding the current boot id")
        ->capture_default_str();
    run->add_option("--heartbeat", cfg.heartbeat_s, "seconds between status reports")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    run->add_option("--poll-wait", cfg.poll_wait_s, "long-poll hold time asked of the seeder (s)")
        ->check(CLI::Range(1, 60))
        ->capture_default_str();
    run->add_option("--webseed-after", cfg.webseed_after_s,
                    "seconds without progress before falling back to the seeder's HTTP web seed")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    run->add_option("--max-attempts", cfg.max_attempts, "attempts before a release stays failed")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    run->add_option("--backoff", cfg.backoff_base_s, "first retry delay (s), doubling each time")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    run->add_option("--download-limit", cfg.download_limit,
                    "download cap in bytes/s over all peers (0: none)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    run->add_option("--upload-limit", cfg.upload_limit, "upload cap in bytes/s (0: none)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    std::string site_ranges;
    run->add_option("--site-ranges", site_ranges,
                    "this endpoint's site (its LAN) as CIDR[,CIDR...], e.g. 10.77.1.0/24: peers "
                    "outside it and the seeder count as WAN");
    run->add_option("--wan-limit", cfg.wan_limit,
                    "cap in bytes/s, each way, on traffic with peers outside --site-ranges "
                    "(0: none)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    run->add_flag("!--no-lsd", cfg.lsd, "disable local service discovery (BEP 14)");
    run->add_option("--group,--groups", cfg.groups,
                    "a group this endpoint belongs to (repeatable; config: groups = [...]): "
                    "selects rollout rings and maintenance windows, reported to the seeder")
        ->take_all();
    std::string reboot_command;
    run->add_option("--reboot-command", reboot_command,
                    "command that reboots this machine, run when a release needs a reboot and "
                    "policy allows it (its maintenance window, or after the deadline). Split at "
                    "spaces, no shell. Default: none, only record that a reboot is required");
    run->add_option("--log-level", log_level,
                    std::string(patchswarm::io::logging::kLevelHelp) + " (any case)")
        ->transform(patchswarm::io::cli::log_level_transform())
        ->capture_default_str();

    patchswarm::daemon::EnrolOptions enrol;
    std::string enrol_bt;
    auto* enroll = app.add_subcommand(
        "enroll",
        "enrol this endpoint with the seeder using a token from `patchswarm-seeder token "
        "create`: registers the device key and stores the endpoint's TLS certificate "
        "(tls.key, tls.crt, fleet-ca.pem and web.secret in the state folder). The token never "
        "leaves this machine: the request is signed with it. `run` renews the certificate at "
        "half its life with the device key");
    enroll->add_option("--state-dir", enrol.state_dir, "folder for this endpoint's state")
        ->required();
    enroll->add_option("--seeder", enrol.seeder, "seeder base URL (the first of run's --seeder)")
        ->required();
    std::string enrol_token_file;
    auto* token_opt = enroll->add_option("--token", enrol.token,
                                         "enrolment token (pst_...; visible in the process list)");
    enroll->add_option("--token-file", enrol_token_file, "read the enrolment token from a file")
        ->check(CLI::ExistingFile)
        ->excludes(token_opt);
    enroll->add_option("--name", enrol.hostname,
                       "name reported to the seeder (default: host name)");
    enroll->add_option("--bt", enrol_bt, "run's --bt address: the request is sent from its IP");

    std::string status_dir;
    bool as_json = false;
    auto* status = app.add_subcommand("status", "show this endpoint's releases and states");
    status->add_option("--state-dir", status_dir, "the agent's state folder")->required();
    status->add_flag("--json", as_json, "print one JSON document (docs/STATUS_JSON.md)");

    std::string defer_dir, defer_id, defer_until;
    bool defer_clear = false;
    auto* defer = app.add_subcommand(
        "defer",
        "hold back the install and reboot of a release until a time, never past the release's "
        "deadline (after it, the endpoint installs and reboots on its own)");
    defer->add_option("ID", defer_id, "release id (see patchswarmd status)")->required();
    defer->add_option("--state-dir", defer_dir, "the agent's state folder")->required();
    auto* until_opt = defer->add_option(
        "--until", defer_until,
        "unix seconds, UTC like 2025-03-09T07:00:00Z, or +N followed by s, m, h or d");
    auto* clear_opt = defer->add_flag("--clear", defer_clear, "remove the deferral");
    until_opt->excludes(clear_opt);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // One line with the program's name, as every other error.
        std::cerr << "patchswarmd: " << patchswarm::io::cli::usage_message(app, e, argc, argv)
                  << " (see --help)\n";
        return kExitUsage;
    }
    try {
        patchswarm::crypto::init();
        if (auto ok = patchswarm::io::logging::setup(log_level); !ok) {
            std::cerr << "patchswarmd: --log-level: " << ok.error().message << "\n";
            return kExitUsage;
        }
        if (*status) return show_status(status_dir, as_json);
        if (*defer) return run_defer(defer_dir, defer_id, defer_until, defer_clear);
        if (*enroll) {
            while (!enrol.seeder.empty() && enrol.seeder.back() == '/') enrol.seeder.pop_back();
            enrol.hostname = host_name(enrol.hostname);
            enrol.local_address = bind_host(enrol_bt);
            if (!enrol_token_file.empty()) {
                auto token = read_token_file(enrol_token_file);
                if (!token) {
                    std::cerr << "patchswarmd: --token-file: " << token.error().message << "\n";
                    return kExitUsage;
                }
                enrol.token = *token;
            }
            if (enrol.token.empty()) {
                std::cerr << "patchswarmd enroll: --token or --token-file is required\n";
                return kExitUsage;
            }
            return run_enroll(std::move(enrol));
        }
        for (const auto& g : cfg.groups) {
            if (auto ok = patchswarm::core::validate_group_name(g); !ok) {
                std::cerr << "patchswarmd: --group '" << g << "': " << ok.error().message << "\n";
                return kExitUsage;
            }
        }
        if (cfg.groups.size() > patchswarm::core::kMaxRingGroups) {
            std::cerr << "patchswarmd: at most " << patchswarm::core::kMaxRingGroups << " groups\n";
            return kExitUsage;
        }
        std::istringstream words(reboot_command);
        for (std::string w; words >> w;) cfg.reboot_command.push_back(w);
        std::stringstream ss(seeders);
        for (std::string url; std::getline(ss, url, ',');) {
            while (!url.empty() && url.back() == '/') url.pop_back();
            if (!url.empty()) cfg.seeders.push_back(url);
        }
        cfg.trust_root = trust;
        if (!site_ranges.empty()) {
            auto ranges = patchswarm::core::parse_cidr_list(site_ranges);
            if (!ranges) {
                std::cerr << "patchswarmd: --site-ranges: " << ranges.error().message << "\n";
                return kExitUsage;
            }
            for (const auto& r : *ranges) cfg.site_ranges.push_back(r.to_string());
        }
        if (!enroll_token_file.empty()) {
            auto token = read_token_file(enroll_token_file);
            if (!token) {
                std::cerr << "patchswarmd: --enroll-token-file: " << token.error().message << "\n";
                return kExitUsage;
            }
            enroll_token = *token;
        }
        if (!enroll_token.empty()) {
            // Not enrolled yet, or the enrolment files are damaged: enrol (again). An expired
            // certificate is the agent's to renew with the device key.
            auto identity = patchswarm::daemon::load_tls_identity(cfg.state_dir);
            if (!identity || !*identity) {
                patchswarm::daemon::EnrolOptions o;
                o.state_dir = cfg.state_dir;
                o.seeder = cfg.seeders.front();
                o.token = enroll_token;
                o.hostname = host_name(cfg.name);
                o.local_address = bind_host(cfg.bt_listen);
                // The seeder may be starting alongside (lab, demo, tests).
                o.retry_for = std::chrono::seconds(60);
                const bool had_certificate = !identity;  // damaged
                // A first enrolment that fails is a configuration error; a failed re-enrolment
                // (a one-time token is used up) leaves the agent running without SSL swarms.
                if (int rc = run_enroll(std::move(o)); rc != kExitOk && !had_certificate) return rc;
            }
        }
        return run_agent(std::move(cfg));
    } catch (const std::exception& e) {
        std::cerr << "patchswarmd: " << e.what() << "\n";
        return kExitFailure;
    }
}
