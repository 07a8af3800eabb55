// patchswarm-seeder's subcommands as a table of groups: each group (one file in seeder/cli/)
// registers its subcommands and options on the CLI11 app and runs the one that was given. main
// only builds the table, parses and dispatches. Errors become one line on stderr and an exit
// code (kExitOk, kExitUsage for a usage error, kExitFailure for anything else).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "io/env.hpp"

namespace patchswarm::seeder::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// The fleet CA's subject name, unless `ca init --name` (or `root init --with-ca`) says otherwise.
inline constexpr const char* kFleetCaName = "patchswarm fleet CA";

// --site's help, shared by serve and status.
inline constexpr const char* kSiteHelp =
    "a site (branch office) by its address ranges: NAME=CIDR[,CIDR...], e.g. "
    "branch1=10.77.1.0/24 (repeatable; in the config file a list: site = [\"a=...\", ...]). "
    "Addresses outside every site form one site per /24 (IPv6: /64)";

inline int fail_with(const Error& e) {
    std::cerr << "patchswarm-seeder: " << e.message << "\n";
    return e.code == Errc::invalid_argument ? kExitUsage : kExitFailure;
}

struct CommandGroup {
    std::vector<std::string> names;  // its subcommands
    // Adds the subcommands and their options to `app` (before parsing).
    std::function<void(CLI::App& app)> add;
    // Runs the group's subcommand that `app` parsed. May throw (start-up errors of serve):
    // std::invalid_argument is a usage error.
    std::function<int(CLI::App& app, io::Env& env)> run;
};

CommandGroup keys_commands();       // keygen, sign
CommandGroup publish_commands();    // publish
CommandGroup root_commands();       // root
CommandGroup serve_commands();      // serve
CommandGroup enrolment_commands();  // ca, token, device
CommandGroup status_commands();     // status, halt, resume

}  // namespace patchswarm::seeder::cli
