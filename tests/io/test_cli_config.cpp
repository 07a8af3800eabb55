// io/cli_config.hpp: one TOML file for a program with subcommands (shared top-level keys,
// [subcommand] sections), flags over the file, and errors that say FILE:LINE:COLUMN.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "base/version.hpp"
#include "io/cli_config.hpp"
#include "io/logging.hpp"
#include "support/process.hpp"

namespace fs = std::filesystem;
using patchswarm::test::TempDir;
using patchswarm::test::write_text;
namespace cli = patchswarm::io::cli;

namespace {

// A program shaped like patchswarmd and patchswarm-seeder: subcommands sharing --state-dir, a
// nested group (token create), a repeatable option and a negated flag.
struct Program {
    CLI::App app{"test program"};
    std::string state_dir, seeder, label, log_level = "info";
    int heartbeat = 60;
    double rate = 0;
    bool lsd = true;
    std::vector<std::string> groups;
    CLI::App* run = nullptr;
    CLI::App* status = nullptr;
    CLI::App* create = nullptr;

    Program() {
        cli::add_config_option(app);
        app.require_subcommand(1);
        run = app.add_subcommand("run", "");
        run->add_option("--state-dir", state_dir)->required();
        run->add_option("--seeder", seeder);
        run->add_option("--heartbeat", heartbeat)->check(CLI::Range(1, 86400));
        run->add_option("--rate", rate);
        run->add_option("--group", groups)->take_all();
        run->add_flag("!--no-lsd", lsd);
        run->add_option("--log-level", log_level)->transform(cli::log_level_transform());
        status = app.add_subcommand("status", "");
        status->add_option("--state-dir", state_dir)->required();
        auto* token = app.add_subcommand("token", "");
        token->require_subcommand(1);
        create = token->add_subcommand("create", "");
        create->add_option("--label", label);
        create->add_option("--state-dir", state_dir);
    }

    void parse(std::vector<std::string> args) {
        std::vector<const char*> argv = {"prog"};
        for (const auto& a : args) argv.push_back(a.c_str());
        app.parse(static_cast<int>(argv.size()), argv.data());
    }
};

// The message of the CLI11 error that parsing `args` throws, or "" if it parses.
std::string parse_error(std::vector<std::string> args) {
    Program p;
    try {
        p.parse(std::move(args));
    } catch (const CLI::ParseError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("one TOML file serves every subcommand: shared keys, sections, flags on top", "[core]") {
    TempDir dir("ps-cli-config");
    const fs::path file = dir / "agent.toml";
    write_text(file,
               "# shared by run, status and token create\n"
               "state-dir = \"/var/lib/x\"\n"
               "seeder = \"http://shared:1\"\n"
               "\n"
               "[run]\n"
               "seeder = \"http://hq:8080\"   # the section wins over the shared key\n"
               "heartbeat = 5\n"
               "rate = 2.5\n"
               "group = [\"office\", \"finance\"]\n"
               "no-lsd = true\n"
               "log-level = \"WARN\"\n"
               "\n"
               "[token.create]\n"
               "label = \"desk\"\n");
    {
        Program p;
        p.parse({"run", "--config", file.string()});
        CHECK(p.state_dir == "/var/lib/x");
        CHECK(p.seeder == "http://hq:8080");
        CHECK(p.heartbeat == 5);
        CHECK(p.rate == Approx(2.5));
        CHECK(p.groups == std::vector<std::string>{"office", "finance"});
        CHECK_FALSE(p.lsd);
        CHECK(p.log_level == "warn");  // any case, turned into the canonical name
    }
    {
        // The [run] keys and `seeder` mean nothing to status, and are no error there.
        Program p;
        p.parse({"--config", file.string(), "status"});
        CHECK(p.state_dir == "/var/lib/x");
        CHECK(p.heartbeat == 60);
    }
    {
        Program p;
        p.parse({"token", "create", "--config", file.string()});
        CHECK(p.label == "desk");
        CHECK(p.state_dir == "/var/lib/x");
    }
    {
        // Flags override the file, the shared key as well as the section's.
        Program p;
        p.parse({"run", "--config", file.string(), "--state-dir", "/tmp/y", "--seeder", "http://z",
                 "--group", "lab"});
        CHECK(p.state_dir == "/tmp/y");
        CHECK(p.seeder == "http://z");
        CHECK(p.groups == std::vector<std::string>{"lab"});
        CHECK(p.heartbeat == 5);
    }
}

TEST_CASE("malformed or unknown config entries are refused with their line and column", "[core]") {
    TempDir dir("ps-cli-config-bad");
    struct Case {
        std::string name;
        std::string text;
        std::string where;  // ":LINE:COLUMN: " expected after the file name
        std::string says;   // a part of the message
    };
    const std::vector<Case> cases = {
        {"unterminated string", "state-dir = \"/srv/patchswarm\n", ":1:", "string"},
        {"unterminated string on line 3", "# a\nheartbeat = 5\nseeder = \"http://x\n",
         ":3:", "string"},
        {"no value", "[run]\nheartbeat =\n", ":2:", ""},
        {"duplicate key", "[run]\nheartbeat = 5\nheartbeat = 6\n", ":3:", "heartbeat"},
        {"unknown key at the top", "state-dir = \"/x\"\nhtttp = \"127.0.0.1:80\"\n",
         ":2:1: ", "unknown key 'htttp'"},
        {"unknown key in a section", "[run]\n  heartbeet = 5\n",
         ":2:3: ", "unknown key 'heartbeet' in [run]"},
        {"a key of another subcommand's section", "[status]\nseeder = \"x\"\n",
         ":2:1: ", "unknown key 'seeder' in [status]"},
        {"unknown section", "[serve]\nhttp = \"x\"\n", ":1:", "unknown section [serve]"},
        {"unknown nested section", "[token.remove]\nlabel = \"x\"\n",
         ":1:", "unknown section [token.remove]"},
        {"a subcommand as a plain key", "run = 5\n", ":1:1: ", "'run' is a subcommand"},
        {"a date where a number goes", "[run]\nheartbeat = 2026-12-04\n", ":2:13: ", "not a date"},
        {"a list for a single value", "[run]\nseeder = [\"a\", \"b\"]\n", ":2:10: ", "one value"},
        {"a number for a flag", "[run]\nno-lsd = 1\n", ":2:10: ", "true or false"},
        {"a table inside a list", "[run]\ngroup = [{a = 1}]\n", ":2:10: ", "not a table"},
        {"the config option itself", "config = \"other.toml\"\n", ":1:1: ", "unknown key 'config'"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        const fs::path file = dir / "bad.toml";
        write_text(file, c.text);
        const std::string error =
            parse_error({"run", "--state-dir", "/s", "--config", file.string()});
        INFO(error);
        CHECK(error.rfind(file.string() + c.where, 0) == 0);
        CHECK(error.find(c.says) != std::string::npos);
    }
}

TEST_CASE("a value the option refuses is a usage error, and so is an unknown log level", "[core]") {
    TempDir dir("ps-cli-config-value");
    write_text(dir / "a.toml", "[run]\nheartbeat = 0\n");
    CHECK(parse_error({"run", "--state-dir", "/s", "--config", (dir / "a.toml").string()})
              .find("heartbeat") != std::string::npos);
    CHECK(parse_error({"run", "--state-dir", "/s", "--log-level", "verbose"}).find("verbose") !=
          std::string::npos);
    CHECK(parse_error({"run", "--state-dir", "/s", "--log-level", "DEBUG"}).empty());
    CHECK(parse_error({"run", "--state-dir", "/s", "--config", (dir / "missing.toml").string()})
              .find("missing.toml") != std::string::npos);
}

TEST_CASE("log levels are matched in any case and never silently turned off", "[core]") {
    namespace logging = patchswarm::io::logging;
    CHECK(logging::canonical_level("INFO") == "info");
    CHECK(logging::canonical_level("Warn") == "warn");
    CHECK(logging::canonical_level("off") == "off");
    CHECK_FALSE(logging::canonical_level("information"));
    CHECK_FALSE(logging::canonical_level(""));
    CHECK_FALSE(logging::setup("loud"));
    CHECK(logging::syslog_priority(4) == 3);  // spdlog::level::err
    CHECK(logging::syslog_priority(2) == 6);  // info
    CHECK_FALSE(patchswarm::kVersion.empty());
}
