// The process runner against real programs: exit codes, captured output, timeouts and stop
// requests that kill the whole process group, no shell anywhere, and a minimal environment.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <stop_token>
#include <string>
#include <thread>

#include "io/process.hpp"
#include "support/process.hpp"

using namespace patchswarm;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using patchswarm::test::TempDir;
using patchswarm::test::wait_until;

io::ProcessResult run_ok(io::ProcessSpec spec) {
    auto result = io::run_process(spec);
    if (!result) FAIL("run_process failed: " << result.error().message);
    return *result;
}

io::ProcessSpec shell(std::string script, std::chrono::seconds timeout = 30s) {
    io::ProcessSpec spec;
    spec.argv = {"/bin/sh", "-c", std::move(script)};
    spec.timeout = timeout;
    return spec;
}

void write_script(const fs::path& path, const std::string& text, fs::perms perms) {
    std::ofstream{path} << text;
    fs::permissions(path, perms);
}

}  // namespace

TEST_CASE("the exit code of the program is returned", "[core]") {
    CHECK(run_ok(shell("exit 0")).exit_code == 0);
    CHECK(run_ok(shell("exit 7")).exit_code == 7);
    const auto r = run_ok(shell("exit 194"));
    CHECK(r.exit_code == 194);
    CHECK_FALSE(r.timed_out);
}

TEST_CASE("exit 3010 arrives as 194 because POSIX exit statuses are 8 bits", "[core]") {
    CHECK(run_ok(shell("exit 3010")).exit_code == 194);
}

TEST_CASE("a program killed by a signal reports 128 plus the signal", "[core]") {
    CHECK(run_ok(shell("kill -KILL $$")).exit_code == 128 + 9);
}

TEST_CASE("stdout and stderr are captured together", "[core]") {
    const auto r = run_ok(shell("echo to-stdout; echo to-stderr >&2; echo again"));
    CHECK(r.output == "to-stdout\nto-stderr\nagain\n");
}

TEST_CASE("only the last max_output bytes of the output are kept", "[core]") {
    auto spec = shell("i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done");
    spec.max_output = 100;
    const auto r = run_ok(spec);
    CHECK(r.exit_code == 0);
    CHECK(r.output.size() == 100);
    CHECK(r.output.ends_with("line19998\nline19999\n"));

    spec.max_output = 0;
    CHECK(run_ok(spec).output.empty());
}

TEST_CASE("a program that outlives its timeout is killed with its process group", "[core]") {
    io::ProcessSpec spec;
    spec.argv = {"sleep", "100"};
    spec.timeout = 1s;
    const auto r = run_ok(spec);
    CHECK(r.timed_out);
    CHECK_FALSE(r.stopped);
    CHECK(r.exit_code == 128 + 15);  // SIGTERM was enough
}

TEST_CASE("a program that ignores SIGTERM is killed with SIGKILL", "[core]") {
    // The shell and its sleep both ignore SIGTERM; only the SIGKILL to the group ends them.
    const auto r = run_ok(shell("trap '' TERM; echo started; sleep 100; echo never", 1s));
    CHECK(r.timed_out);
    CHECK(r.exit_code == 128 + 9);
    CHECK(r.output == "started\n");
}

TEST_CASE("a stop request kills the running program with its process group, before its timeout",
          "[core]") {
    TempDir dir;
    // The shell (the group's leader) and a background sleep 60 in its group; the pids file
    // appears (renamed into place whole) once both run.
    auto spec = shell("sleep 60 & echo \"$$ $!\" > pids.tmp && mv pids.tmp pids; wait", 60s);
    spec.cwd = dir.path();
    std::stop_source source;
    spec.stop = source.get_token();
    pid_t group = 0;
    std::thread stopper([&] {
        if (wait_until([&] { return fs::exists(dir / "pids"); }, 30s)) {
            std::ifstream{dir / "pids"} >> group;
        }
        source.request_stop();  // regardless, so a failure cannot hang on the sleep
    });
    const auto r = run_ok(spec);
    stopper.join();
    REQUIRE(group > 0);
    CHECK(r.stopped);
    CHECK_FALSE(r.timed_out);  // it ended through the stop, long before its 60 s timeout
    CHECK(r.exit_code == 128 + 15);
    CHECK(wait_until([&] { return !test::process_group_alive(group); }, 10s));
}

TEST_CASE("a program whose stop was requested before it started is not run", "[core]") {
    TempDir dir;
    auto spec = shell("touch ran");
    spec.cwd = dir.path();
    std::stop_source source;
    source.request_stop();
    spec.stop = source.get_token();
    const auto r = run_ok(spec);
    CHECK(r.stopped);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == -1);
    CHECK_FALSE(fs::exists(dir / "ran"));
}

TEST_CASE("a stop token that is never stopped changes nothing", "[core]") {
    auto spec = shell("echo ok");
    std::stop_source source;
    spec.stop = source.get_token();
    const auto r = run_ok(spec);
    CHECK_FALSE(r.stopped);
    CHECK(r.exit_code == 0);
    CHECK(r.output == "ok\n");
}

TEST_CASE("a background child holding the output pipe does not delay the result", "[core]") {
    // If the runner waited for end-of-file on the pipe, it would hit the timeout here.
    const auto r = run_ok(shell("sleep 5 & echo done", 3s));
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK(r.output == "done\n");
}

TEST_CASE("a program that cannot be started is an Errc::process error", "[core]") {
    TempDir dir;
    io::ProcessSpec spec;
    spec.cwd = dir.path();
    SECTION("not in PATH") {
        spec.argv = {"patchswarm-no-such-program"};
    }
    SECTION("no such absolute path") {
        spec.argv = {"/nonexistent/patchswarm/install.sh"};
    }
    SECTION("relative path missing from cwd") {
        spec.argv = {"./install.sh"};
    }
    SECTION("not executable") {
        write_script(dir.path() / "install.sh", "#!/bin/sh\nexit 0\n",
                     fs::perms::owner_read | fs::perms::owner_write);
        spec.argv = {"./install.sh"};
    }
    SECTION("cwd does not exist") {
        spec.argv = {"/bin/true"};
        spec.cwd = dir.path() / "missing";
    }
    const auto r = io::run_process(spec);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::process);
    CHECK_FALSE(r.error().message.empty());
}

TEST_CASE("an empty argv is refused", "[core]") {
    const auto r = io::run_process(io::ProcessSpec{});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::invalid_argument);
}

TEST_CASE("arguments with shell metacharacters are passed literally", "[core]") {
    TempDir dir;
    io::ProcessSpec spec;
    spec.cwd = dir.path();
    spec.argv = {"/bin/echo", "$(touch pwned)", "`touch pwned2`;", "touch", "pwned3", "|", "&&"};
    const auto r = run_ok(spec);
    CHECK(r.output == "$(touch pwned) `touch pwned2`; touch pwned3 | &&\n");
    CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("the program runs in the given working directory", "[core]") {
    TempDir dir;
    io::ProcessSpec spec;
    spec.argv = {"/bin/pwd"};
    spec.cwd = dir.path();
    CHECK(run_ok(spec).output == fs::canonical(dir.path()).string() + "\n");
}

TEST_CASE("a relative program path is resolved against the working directory", "[core]") {
    TempDir dir;
    write_script(dir.path() / "install.sh", "#!/bin/sh\necho \"installing $1\"\nexit 3\n",
                 fs::perms::owner_all);
    io::ProcessSpec spec;
    spec.argv = {"./install.sh", "KB958644"};
    spec.cwd = dir.path();
    const auto r = run_ok(spec);
    CHECK(r.exit_code == 3);
    CHECK(r.output == "installing KB958644\n");
}

TEST_CASE("the child gets a minimal environment plus the extra variables", "[core]") {
    REQUIRE(::setenv("PATCHSWARM_SECRET_FROM_PARENT", "leak", 1) == 0);
    io::ProcessSpec spec;
    spec.argv = {"env"};
    spec.extra_env = {{"PATCHSWARM_RELEASE", "MS08-067"}, {"LANG", "en_US.UTF-8"}};
    const auto r = run_ok(spec);
    CHECK(r.output.find("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n") !=
          std::string::npos);
    CHECK(r.output.find("PATCHSWARM_RELEASE=MS08-067\n") != std::string::npos);
    CHECK(r.output.find("LANG=en_US.UTF-8\n") != std::string::npos);  // extra_env wins
    CHECK(r.output.find("PATCHSWARM_SECRET_FROM_PARENT") == std::string::npos);
    ::unsetenv("PATCHSWARM_SECRET_FROM_PARENT");

    spec.extra_env = {{"BAD=NAME", "x"}};
    const auto bad = io::run_process(spec);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().code == Errc::invalid_argument);
}

TEST_CASE("the child inherits no descriptors but stdin, stdout and stderr", "[core]") {
    const int leaked = ::open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
    REQUIRE(leaked > 2);
    const auto fd = std::to_string(leaked);
    const auto r =
        run_ok(shell("if [ -e /proc/$$/fd/" + fd + " ]; then echo open; else echo closed; fi"));
    ::close(leaked);
    CHECK(r.output == "closed\n");
}

TEST_CASE("stdin is empty, so a program reading it does not hang", "[core]") {
    io::ProcessSpec spec;
    spec.argv = {"cat"};
    spec.timeout = 10s;
    const auto r = run_ok(spec);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK(r.output.empty());
}
