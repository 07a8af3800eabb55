// The shipped systemd units (deploy/systemd/): `systemd-analyze verify` finds nothing to say,
// and `systemd-analyze security --offline=yes` scores them within docs/SECURITY.md's bounds.
#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <string>

#include "support/process.hpp"

using patchswarm::test::read_text;
using patchswarm::test::run;
using patchswarm::test::TempDir;
using patchswarm::test::write_text;
namespace fs = std::filesystem;

namespace {

const fs::path kUnits = fs::path(PATCHSWARM_LAB_SCRIPT).parent_path().parent_path() / "systemd";
const char* const kAnalyze = "/usr/bin/systemd-analyze";

// The unit with its ExecStart pointed at the binaries just built (verify checks that the
// command exists; the packages install them in /usr/bin).
fs::path built_copy(const TempDir& dir, const std::string& unit) {
    std::string text = read_text(kUnits / unit);
    for (const auto& [installed, built] :
         {std::pair<std::string, std::string>{"/usr/bin/patchswarm-seeder", PATCHSWARM_SEEDER_BIN},
          std::pair<std::string, std::string>{"/usr/bin/patchswarmd", PATCHSWARM_DAEMON_BIN}}) {
        for (auto at = text.find(installed + " "); at != std::string::npos;
             at = text.find(installed + " ", at + built.size())) {
            text.replace(at, installed.size(), built);
        }
    }
    write_text(dir / unit, text);
    return dir / unit;
}

double exposure(const fs::path& unit) {
    const auto r = run({kAnalyze, "security", "--offline=yes", unit.string()});
    INFO(r.output);
    std::smatch m;
    REQUIRE(
        std::regex_search(r.output, m, std::regex("Overall exposure level for [^:]+: ([0-9.]+)")));
    return std::stod(m[1].str());
}

}  // namespace

TEST_CASE("both units verify cleanly and score within their security bounds", "[integration]") {
    if (!fs::exists(kAnalyze)) {
        WARN("no systemd-analyze on this machine");
        return;
    }
    TempDir dir("ps-units");
    struct Unit {
        std::string name;
        double bound;  // docs/SECURITY.md, "The systemd units"
    };
    for (const Unit& u :
         {Unit{"patchswarm-seeder.service", 2.5}, Unit{"patchswarmd.service", 8.5}}) {
        INFO(u.name);
        const fs::path copy = built_copy(dir, u.name);
        const auto verify = run({kAnalyze, "verify", copy.string()});
        INFO(verify.output);
        CHECK(verify.exit_code == 0);
        CHECK(verify.output.empty());
        const std::string text = read_text(copy);
        CHECK(text.find("\nType=notify\n") != std::string::npos);
        CHECK(text.find("\nLimitNOFILE=") != std::string::npos);
        CHECK(exposure(copy) <= u.bound);
    }
}
