// TOML config files for CLI11 programs with subcommands: `--config FILE` before or after the
// subcommand; the file may hold [subcommand] sections or, for the subcommand being run, plain
// top-level keys (as the examples in deploy/ do). Command-line flags override the file; unknown
// keys are an error. Header-only because only main.cpp files include CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace patchswarm::io::cli {

class SubcommandConfig : public CLI::ConfigTOML {
  public:
    explicit SubcommandConfig(std::string subcommand) : subcommand_(std::move(subcommand)) {}

    std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
        auto items = CLI::ConfigTOML::from_config(input);
        if (subcommand_.empty()) return items;
        for (auto& item : items) {
            if (item.parents.empty()) item.parents = {subcommand_};
        }
        return items;
    }

  private:
    std::string subcommand_;
};

// The subcommand named on the command line, found before parsing so that the config file can
// be read for it; "" if there is none.
inline std::string subcommand_in(int argc, char** argv, const std::vector<std::string>& names) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--config") {
            ++i;  // its value, whatever it is called
            continue;
        }
        if (std::find(names.begin(), names.end(), arg) != names.end()) return std::string(arg);
    }
    return "";
}

inline constexpr const char* kConfigFooter =
    "Every option can also come from a TOML file given with --config FILE (before or after the "
    "subcommand): keys are long option names without the leading dashes, at the top level for "
    "the subcommand being run or in a section named after a subcommand. Command-line flags "
    "override the file; unknown keys are an error.";

// Adds --config to `app` with the rules above. Call before adding subcommands' options.
inline void add_config_option(CLI::App& app, int argc, char** argv,
                              const std::vector<std::string>& subcommands) {
    app.footer(kConfigFooter);
    app.set_config("--config", "", "TOML file with options (see below)");
    app.config_formatter(
        std::make_shared<SubcommandConfig>(subcommand_in(argc, argv, subcommands)));
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.fallthrough();  // so --config may also follow the subcommand
}

}  // namespace patchswarm::io::cli
