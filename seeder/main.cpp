// patchswarm-seeder: command-line wiring only. The subcommands are a table of groups
// (seeder/cli/commands.hpp, one file each in seeder/cli/); main builds it, parses, sets up
// logging and the Env, and runs the group whose subcommand was given.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <stdexcept>

#include "crypto/crypto.hpp"
#include "io/cli_config.hpp"
#include "io/env.hpp"
#include "seeder/cli/commands.hpp"

namespace {

namespace cli = patchswarm::seeder::cli;

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("seeder");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<cli::CommandGroup> groups = {
        cli::keys_commands(),  cli::root_commands(),   cli::publish_commands(),
        cli::serve_commands(), cli::status_commands(), cli::enrolment_commands()};
    CLI::App app{"patchswarm-seeder: signs releases and serves them to the fleet."};
    patchswarm::io::cli::add_config_option(app, argc, argv,
                                           {"keygen", "root", "sign", "publish", "serve", "status",
                                            "halt", "resume", "ca", "token", "device"});
    app.require_subcommand(1);
    for (const auto& g : groups) g.add(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "patchswarm-seeder: " << e.what() << " (see --help)\n";
        return cli::kExitUsage;
    }

    try {
        patchswarm::crypto::init();
        setup_logging("info");
        const auto env = patchswarm::io::make_posix_env();
        for (const auto& g : groups) {
            for (const auto& name : g.names) {
                if (app.got_subcommand(name)) return g.run(app, *env);
            }
        }
    } catch (const std::invalid_argument& e) {
        std::cerr << "patchswarm-seeder: " << e.what() << "\n";
        return cli::kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "patchswarm-seeder: " << e.what() << "\n";
        return cli::kExitFailure;
    }
    return cli::kExitUsage;
}
