// patchswarm-seeder: command-line wiring only. The subcommands are a table of groups
// (seeder/cli/commands.hpp, one file each in seeder/cli/); main builds it, parses, sets up
// logging and the Env, and runs the group whose subcommand was given.
#include <CLI/CLI.hpp>
#include <iostream>
#include <stdexcept>

#include "crypto/crypto.hpp"
#include "io/cli_config.hpp"
#include "io/env.hpp"
#include "io/logging.hpp"
#include "seeder/cli/commands.hpp"

namespace {

namespace cli = patchswarm::seeder::cli;

}  // namespace

int main(int argc, char** argv) {
    const std::vector<cli::CommandGroup> groups = {
        cli::keys_commands(),  cli::root_commands(),   cli::publish_commands(),
        cli::serve_commands(), cli::status_commands(), cli::enrolment_commands()};
    CLI::App app{"patchswarm-seeder: signs releases and serves them to the fleet."};
    patchswarm::io::cli::add_config_option(app);
    patchswarm::io::cli::add_version_flag(app, "patchswarm-seeder");
    app.require_subcommand(1);
    for (const auto& g : groups) g.add(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "patchswarm-seeder: " << patchswarm::io::cli::usage_message(app, e, argc, argv)
                  << " (see --help)\n";
        return cli::kExitUsage;
    }

    try {
        patchswarm::crypto::init();
        // serve sets its --log-level; every other subcommand logs at info.
        if (auto ok = patchswarm::io::logging::setup("info"); !ok)
            return cli::fail_with(ok.error());
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
