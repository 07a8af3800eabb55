// The command-line contract of both programs: exit codes, --help, and TOML config files.
#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/root_init.hpp"

using patchswarm::test::Child;
using patchswarm::test::init_repo_root;
using patchswarm::test::run;
using patchswarm::test::TempDir;
using patchswarm::test::wait_until;
using patchswarm::test::write_text;
namespace fs = std::filesystem;

TEST_CASE("both programs exit 0 for --help, 2 for usage errors and 1 for failures", "[cli]") {
    for (const char* bin : {PATCHSWARM_SEEDER_BIN, PATCHSWARM_DAEMON_BIN}) {
        INFO(bin);
        CHECK(run({bin, "--help"}).exit_code == 0);
        CHECK(run({bin}).exit_code == 2);
        const auto unknown = run({bin, "no-such-command"});
        CHECK(unknown.exit_code == 2);
        // One line, the program's name first, naming the word it did not know.
        CHECK(unknown.output.find(": unknown subcommand 'no-such-command' (one of: ") !=
              std::string::npos);
        CHECK(unknown.output.rfind(fs::path(bin).filename().string() + ": ", 0) == 0);
        CHECK(std::count(unknown.output.begin(), unknown.output.end(), '\n') == 1);
    }
    const auto unknown_nested = run({PATCHSWARM_SEEDER_BIN, "token", "frob"});
    CHECK(unknown_nested.exit_code == 2);
    CHECK(unknown_nested.output.find("unknown subcommand 'frob' of token (one of: create, list, "
                                     "revoke)") != std::string::npos);
    CHECK(run({PATCHSWARM_DAEMON_BIN, "run", "--no-such-flag"}).exit_code == 2);
    const auto missing = run({PATCHSWARM_DAEMON_BIN, "status", "--state-dir", "/nonexistent/ps"});
    CHECK(missing.exit_code == 1);
    CHECK(missing.output.find("no state in /nonexistent/ps") != std::string::npos);
    const auto no_repo = run({PATCHSWARM_SEEDER_BIN, "status", "--repo", "/nonexistent/repo"});
    CHECK(no_repo.exit_code == 1);
}

TEST_CASE("patchswarmd takes every run option from a TOML file", "[cli]") {
    TempDir dir("ps-cli");
    const auto keys = init_repo_root(dir / "keys", dir / "repo");
    const fs::path state = dir / "state";
    write_text(dir / "agent.toml",
               "state-dir = \"" + state.string() + "\"\n" + "seeder = \"http://127.30.0.1:1\"\n" +
                   "trust = \"" + keys.root_json.string() + "\"\n" +
                   "bt = \"127.30.0.10:16881\"\n" + "heartbeat = 5\n" + "no-lsd = true\n");
    Child agent({PATCHSWARM_DAEMON_BIN, "run", "--config", (dir / "agent.toml").string()},
                dir / "agent.log");
    // The agent came up with the configured state folder: it created its device key there.
    CHECK(wait_until([&] { return fs::exists(state / "device.key"); }, std::chrono::seconds(20)));
    CHECK((fs::status(state / "device.key").permissions() & fs::perms::others_read) ==
          fs::perms::none);
    CHECK(agent.stop() == 0);

    write_text(dir / "bad.toml", "no-such-key = 1\n");
    CHECK(run({PATCHSWARM_DAEMON_BIN, "run", "--config", (dir / "bad.toml").string()}).exit_code ==
          2);
}

TEST_CASE("root and sign commands and publish --stage/--commit keep the exit code contract",
          "[cli]") {
    TempDir dir("ps-cli-root");
    const auto keys = init_repo_root(dir / "keys", dir / "repo");
    const std::string repo = (dir / "repo").string();
    const std::string seeder = PATCHSWARM_SEEDER_BIN;
    for (const char* cmd : {"root", "sign"}) {
        INFO(cmd);
        CHECK(run({seeder, cmd, "--help"}).exit_code == 0);
    }
    // Usage errors: 2, and nothing is written.
    const std::vector<std::vector<std::string>> usage = {
        {seeder, "root"},
        {seeder, "root", "init", "--repo", repo},  // no --root-pub / --release-pub
        {seeder, "root", "rotate", "--repo", repo, "--root-threshold", "0"},
        {seeder, "root", "rotate", "--repo", repo, "--expires-days", "0"},
        {seeder, "sign", "--key", keys.release_key.string()},  // no file
        {seeder, "publish", "--repo", repo, "--id", "KB1", "--commit", "--stage"},
        {seeder, "publish", "--repo", repo, "--id", "KB1", "--commit", "--payload", repo},
        {seeder, "publish", "--repo", repo, "--id", "KB1", "--merge", "x.json"},  // no --commit
        {seeder, "publish", "--repo", repo, "--id", "KB1", "--key", keys.release_key.string()},
    };
    for (const auto& argv : usage) {
        const auto r = run(argv);
        INFO(argv[1] << " " << argv.back() << ": " << r.output);
        CHECK(r.exit_code == 2);
    }
    CHECK_FALSE(fs::exists(dir / "repo/root/staged.json"));
    CHECK_FALSE(fs::exists(dir / "repo/root/2.json"));
    // Failures: 1 with one line.
    const auto again =
        run({seeder, "root", "init", "--repo", repo, "--root-pub", (dir / "keys/root.pub").string(),
             "--release-pub", (dir / "keys/release.pub").string()});
    CHECK(again.exit_code == 1);
    CHECK(again.output.find("already has root version 1") != std::string::npos);
    const auto nothing_staged =
        run({seeder, "root", "sign", "--repo", repo, "--key", (dir / "keys/root.key").string()});
    CHECK(nothing_staged.exit_code == 1);
    CHECK(
        run({seeder, "sign", "--key", keys.release_key.string(), (dir / "repo/repo.json").string()})
            .exit_code == 1);
    // The issue 2 way of pinning trust (a release .pub) is refused with a pointer to root.json.
    const auto old_trust =
        run({PATCHSWARM_DAEMON_BIN, "run", "--state-dir", (dir / "ep").string(), "--seeder",
             "http://127.60.0.1:1", "--trust", (dir / "keys/release.pub").string()});
    CHECK(old_trust.exit_code == 1);
    CHECK(old_trust.output.find("not a valid signed root document") != std::string::npos);
    const auto no_stage = run({seeder, "publish", "--repo", repo, "--id", "KB1", "--commit"});
    CHECK(no_stage.exit_code == 1);
    CHECK(no_stage.output.find("no staged release KB1") != std::string::npos);
}

TEST_CASE("token list and device list print JSON with --json", "[cli]") {
    TempDir dir("ps-cli-json");
    init_repo_root(dir / "keys", dir / "repo");
    const std::string repo = (dir / "repo").string();
    REQUIRE(run({PATCHSWARM_SEEDER_BIN, "ca", "init", "--repo", repo}).exit_code == 0);
    REQUIRE(run({PATCHSWARM_SEEDER_BIN, "token", "create", "--repo", repo, "--uses", "2", "--label",
                 "desks \"3rd floor\""})
                .exit_code == 0);
    const auto tokens = run({PATCHSWARM_SEEDER_BIN, "token", "list", "--repo", repo, "--json"});
    REQUIRE(tokens.exit_code == 0);
    const auto list = nlohmann::json::parse(tokens.output);
    REQUIRE(list.size() == 1);
    CHECK(list[0]["state"] == "active");
    CHECK(list[0]["uses_left"] == 2);
    CHECK(list[0]["used"] == 0);
    CHECK(list[0]["expires_at"].is_null());
    CHECK(list[0]["label"] == "desks \"3rd floor\"");
    CHECK(list[0]["id"].get<std::string>().size() >= 6);
    const auto devices = run({PATCHSWARM_SEEDER_BIN, "device", "list", "--repo", repo, "--json"});
    REQUIRE(devices.exit_code == 0);
    CHECK(nlohmann::json::parse(devices.output) == nlohmann::json::array());
}
