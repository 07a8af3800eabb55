// Supervised installs (io/supervise.hpp) with the real supervisor (`patchswarmd supervise`):
// detached from the caller, one at a time per key, recorded with pid, start time and exit status,
// and a recorded pid that now belongs to another process is not mistaken for the installer.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "io/fs.hpp"
#include "io/supervise.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using patchswarm::test::TempDir;
using patchswarm::test::wait_until;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

io::SupervisedSpec spec_for(const TempDir& dir, const std::string& key, const std::string& script) {
    test::write_text(dir / "work" / "install.sh", script);
    fs::permissions(dir / "work" / "install.sh", fs::perms::owner_all);
    io::SupervisedSpec s;
    s.dir = dir / "installs";
    s.key = key;
    s.process.argv = {"./install.sh"};
    s.process.cwd = dir / "work";
    s.process.timeout = std::chrono::seconds(60);
    s.process.extra_env = {{"MARK", (dir / "mark").string()}};
    return s;
}

}  // namespace

TEST_CASE("a supervised install runs detached, once per key, and records its exit status", "[io]") {
    TempDir dir("ps-supervise");
    const fs::path go = dir / "go";
    auto s = spec_for(dir, "KB1.abcd.0",
                      "#!/bin/sh\necho started >> \"$MARK\"\nwhile [ ! -e " + go.string() +
                          " ]; do sleep 0.05; done\necho out-line\nexit 7\n");
    REQUIRE(io::start_supervised(PATCHSWARM_DAEMON_BIN, s));
    REQUIRE(wait_until([&] { return io::probe_supervised(s.dir, s.key).installer_started; }, 30s));
    auto seen = io::probe_supervised(s.dir, s.key);
    CHECK(seen.supervisor_running);
    CHECK(seen.installer_running);
    CHECK_FALSE(seen.finished);
    // Not our child: the supervisor was reparented (its parent is not this process).
    const auto record =
        nlohmann::json::parse(*io::read_file(s.dir / (s.key + ".json"), 1 << 16), nullptr, false);
    const int supervisor = record.value("supervisor_pid", 0);
    REQUIRE(supervisor > 0);
    const auto stat = io::read_file("/proc/" + std::to_string(supervisor) + "/stat", 4096);
    REQUIRE(stat);
    const auto after = stat->substr(stat->rfind(')') + 2);
    const int ppid = std::stoi(after.substr(after.find(' ') + 1));
    CHECK(ppid != ::getpid());
    // Another session than ours (the first fork's, which setsid made and which has exited), and
    // not its leader, so it can never get a controlling terminal.
    CHECK(::getsid(supervisor) != ::getsid(0));
    CHECK(::getsid(supervisor) != supervisor);

    // A second start for the same key while the first runs is refused: never two at once.
    auto twice = io::start_supervised(PATCHSWARM_DAEMON_BIN, s);
    REQUIRE_FALSE(twice);
    CHECK(twice.error().code == Errc::already_exists);

    std::stop_source stop;
    stop.request_stop();
    CHECK_FALSE(io::wait_supervised(s.dir, s.key, stop.get_token()));  // the stop comes first

    test::write_text(go, "");
    CHECK(io::wait_supervised(s.dir, s.key, std::stop_token{}));
    seen = io::probe_supervised(s.dir, s.key);
    CHECK_FALSE(seen.supervisor_running);
    CHECK_FALSE(seen.installer_running);
    CHECK(seen.finished);
    CHECK(seen.exit_code == 7);
    CHECK(seen.output_tail.find("out-line") != std::string::npos);
    CHECK(test::read_text(dir / "mark") == "started\n");
}

TEST_CASE("a recorded installer pid that is gone or reused reads as not running", "[io]") {
    TempDir dir("ps-supervise");
    const fs::path installs = dir / "installs";
    fs::create_directories(installs);
    const auto self_start = io::process_start_time(static_cast<int>(::getpid()));
    REQUIRE(self_start);
    struct Row {
        const char* what;
        std::int64_t pid;
        std::uint64_t start;
        bool running;
    };
    const Row rows[] = {
        {"this very process", ::getpid(), *self_start, true},
        {"same pid, another start time (reused)", ::getpid(), *self_start + 1, false},
        {"no such process", 0x3fffffff, 1, false},
    };
    for (const auto& row : rows) {
        INFO(row.what);
        nlohmann::json rec{{"phase", "running"},
                           {"supervisor_pid", 0},
                           {"installer_pid", row.pid},
                           {"installer_start", row.start}};
        REQUIRE(io::write_file_atomic(installs / "K.0.json", rec.dump(), fs::perms::owner_all));
        const auto seen = io::probe_supervised(installs, "K.0");
        CHECK(seen.recorded);
        CHECK(seen.installer_started);
        CHECK(seen.installer_running == row.running);
        CHECK_FALSE(seen.supervisor_running);  // no lock file, no supervisor
    }
    // No record at all: nothing ever ran under this key.
    const auto none = io::probe_supervised(installs, "K.1");
    CHECK_FALSE(none.recorded);
    CHECK_FALSE(none.installer_started);
    // Keys are file names: anything else is refused before a file is touched.
    CHECK_FALSE(io::start_supervised(PATCHSWARM_DAEMON_BIN,
                                     spec_for(dir, "../escape", "#!/bin/sh\nexit 0\n")));
}
