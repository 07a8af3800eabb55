// TOML config files for CLI11 programs with subcommands, read with toml++.
//
// `--config FILE` (before or after the subcommand) names one file for the whole program:
//   - keys at the top level are shared: each applies to the subcommand being run if it has that
//     option (state-dir = ... serves `run`, `status` and `defer` alike);
//   - a [name] section holds keys for subcommand `name` only, [name.sub] for a nested one, and
//     overrides a shared key of the same name;
//   - keys are long option names without the leading dashes; values are strings, integers,
//     floats, booleans or arrays of them (a repeatable option).
// A key that is no option of any subcommand in its scope, a section that names no subcommand,
// a value of the wrong kind and TOML syntax errors are refused as "FILE:LINE:COLUMN: message"
// (a CLI::ConfigError, so a usage error). Command-line flags override the file.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

namespace patchswarm::io::cli {

// CLI11's config formatter backed by toml++. Reads the program's subcommands from `app` when
// the file is read (after the command line is parsed, so it knows which subcommand runs).
// `app` must outlive it (add_config_option installs it on the app itself).
class TomlConfig final : public CLI::Config {
  public:
    explicit TomlConfig(const CLI::App& app) : app_(app) {}

    // Writing config files (--config's write-out) is not offered.
    std::string to_config(const CLI::App*, bool, bool, std::string) const override { return {}; }
    // Throws CLI::ConfigError as described above.
    std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;

  private:
    const CLI::App& app_;
};

inline constexpr const char* kConfigFooter =
    "Every option can also come from a TOML file given with --config FILE (before or after the "
    "subcommand): keys are long option names without the leading dashes; keys at the top level "
    "are shared by every subcommand that has the option, keys in a [subcommand] section apply "
    "to that subcommand only. Command-line flags override the file; unknown keys are an error.";

// Adds --config to `app` with the rules above. Call before adding subcommands' options.
void add_config_option(CLI::App& app);

// Adds --version to `app`: prints "PROGRAM VERSION" (the CMake project version) and exits 0.
void add_version_flag(CLI::App& app, const std::string& program);

// The one-line text for a CLI11 parse error of `app` on argv: "unknown subcommand 'X' of
// PROGRAM (one of: a, b, c)" when a word where a subcommand belongs names none (CLI11 would say
// "A subcommand is required"), otherwise CLI11's own message.
std::string usage_message(const CLI::App& app, const CLI::ParseError& error, int argc,
                          const char* const* argv);

// For --log-level: accepts io/logging.hpp's levels in any case ("INFO") and turns them into
// their canonical names; anything else is a usage error naming the accepted levels.
CLI::Validator log_level_transform();

}  // namespace patchswarm::io::cli
