// Both programs as systemd services: --version, READY/STATUS/WATCHDOG through a notify socket
// the test binds (what systemd does for Type=notify), journald-style log lines when stderr is
// the journal stream, SIGHUP harmless, and the shipped units checked by systemd-analyze.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/root_init.hpp"

using patchswarm::test::Child;
using patchswarm::test::init_repo_root;
using patchswarm::test::read_text;
using patchswarm::test::run;
using patchswarm::test::TempDir;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;

namespace {

// A unix datagram socket standing in for systemd's notify socket; collects what it receives.
class NotifySocket {
  public:
    explicit NotifySocket(const fs::path& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(path.string().size() < sizeof addr.sun_path);
        std::strcpy(addr.sun_path, path.c_str());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~NotifySocket() { ::close(fd_); }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    // Reads whatever arrived within 100 ms; returns everything received so far.
    const std::string& poll_messages() {
        pollfd p{fd_, POLLIN, 0};
        while (::poll(&p, 1, 100) > 0) {
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) break;
            received_.append(buf, static_cast<std::size_t>(n));
            received_ += '\n';
        }
        return received_;
    }
    bool saw(const std::string& line) {
        return ("\n" + poll_messages()).find("\n" + line) != std::string::npos;
    }

  private:
    fs::path path_;
    int fd_ = -1;
    std::string received_;
};

// Sets environment variables for the children started in its scope (Child inherits them).
class ScopedEnv {
  public:
    ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) : vars_(std::move(vars)) {
        for (const auto& [k, v] : vars_) ::setenv(k.c_str(), v.c_str(), 1);
    }
    ~ScopedEnv() {
        for (const auto& [k, v] : vars_) ::unsetenv(k.c_str());
    }

  private:
    std::vector<std::pair<std::string, std::string>> vars_;
};

std::string journal_stream_of(const fs::path& file) {
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

}  // namespace

TEST_CASE("both programs print their version", "[cli]") {
    for (const auto& [bin, name] : {std::pair{PATCHSWARM_SEEDER_BIN, "patchswarm-seeder"},
                                    std::pair{PATCHSWARM_DAEMON_BIN, "patchswarmd"}}) {
        const auto r = run({bin, "--version"});
        CHECK(r.exit_code == 0);
        CHECK(std::regex_match(r.output,
                               std::regex(std::string(name) + " [0-9]+\\.[0-9]+\\.[0-9]+\n")));
    }
}

TEST_CASE("the example configs in deploy/ parse for the subcommands they document", "[cli]") {
    const fs::path deploy = fs::path(PATCHSWARM_LAB_SCRIPT).parent_path().parent_path();
    // Exit 1: the config was read and the subcommand ran (and found no repository or state
    // here); a config error would be a usage error (2).
    for (const char* cmd : {"serve", "status"}) {
        const auto r = run({PATCHSWARM_SEEDER_BIN, cmd, "--config",
                            (deploy / "seeder.toml").string(), "--repo", "/nonexistent/ps-repo"});
        INFO(cmd << ": " << r.output);
        CHECK(r.exit_code == 1);
    }
    const auto r = run({PATCHSWARM_DAEMON_BIN, "status", "--config",
                        (deploy / "agent.toml").string(), "--state-dir", "/nonexistent/ps-state"});
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("no state in /nonexistent/ps-state") != std::string::npos);
}

TEST_CASE("serve and run tell a notify socket READY, log for journald and survive SIGHUP",
          "[integration]") {
    TempDir dir("ps-service");
    const auto keys = init_repo_root(dir / "keys", dir / "repo");
    NotifySocket seeder_notify(dir / "seeder.notify");
    // Under journald: stderr is the stream $JOURNAL_STREAM names (here the log file).
    patchswarm::test::write_text(dir / "serve.log", "");
    std::optional<Child> serve;
    {
        ScopedEnv env({{"NOTIFY_SOCKET", (dir / "seeder.notify").string()},
                       {"JOURNAL_STREAM", journal_stream_of(dir / "serve.log")}});
        serve.emplace(
            std::vector<std::string>{PATCHSWARM_SEEDER_BIN, "serve", "--repo",
                                     (dir / "repo").string(), "--http", "127.16.0.1:18080", "--bt",
                                     "127.16.0.1:16881", "--log-level", "INFO"},
            dir / "serve.log");
    }
    REQUIRE(wait_until([&] { return seeder_notify.saw("READY=1"); }, std::chrono::seconds(30)));
    CHECK(std::regex_search(seeder_notify.poll_messages(),
                            std::regex("STATUS=serving 0 release\\(s\\), feed [0-9]+, on http "
                                       "127\\.16\\.0\\.1:18080")));
    // Listening by the time it says so.
    CHECK(run({"/usr/bin/curl", "-sf", "-o", "/dev/null", "http://127.16.0.1:18080/v1/feed"})
              .exit_code == 0);

    NotifySocket agent_notify(dir / "agent.notify");
    std::optional<Child> agent;
    {
        ScopedEnv env(
            {{"NOTIFY_SOCKET", (dir / "agent.notify").string()}, {"WATCHDOG_USEC", "400000"}});
        agent.emplace(
            std::vector<std::string>{PATCHSWARM_DAEMON_BIN, "run", "--state-dir",
                                     (dir / "ep").string(), "--seeder", "http://127.16.0.1:18080",
                                     "--trust", keys.root_json.string(), "--bt", "127.16.0.2:16881",
                                     "--no-lsd", "--log-level", "Debug"},
            dir / "agent.log");
    }
    REQUIRE(wait_until([&] { return agent_notify.saw("READY=1"); }, std::chrono::seconds(30)));
    CHECK(agent_notify.saw("STATUS=feed from http://127.16.0.1:18080; 0 release(s)"));
    // WatchdogSec=: keep-alives at half the interval, again and again.
    CHECK(wait_until(
        [&] {
            const std::string& m = agent_notify.poll_messages();
            std::size_t n = 0;
            for (auto at = m.find("WATCHDOG=1"); at != std::string::npos;
                 at = m.find("WATCHDOG=1", at + 1)) {
                ++n;
            }
            return n >= 3;
        },
        std::chrono::seconds(20)));

    // SIGHUP is not a (clean) exit: both keep running and say why they ignore it.
    serve->signal(SIGHUP);
    agent->signal(SIGHUP);
    CHECK(wait_until(
        [&] {
            return read_text(dir / "serve.log").find("SIGHUP: options are read at start only") !=
                       std::string::npos &&
                   read_text(dir / "agent.log").find("SIGHUP: the configuration is read") !=
                       std::string::npos;
        },
        std::chrono::seconds(20)));
    CHECK(serve->running());
    CHECK(agent->running());

    CHECK(agent->stop() == 0);
    CHECK(agent_notify.saw("STOPPING=1"));
    CHECK(serve->stop() == 0);

    // Under journald: "<N>" per line and no timestamp of our own (journald adds its own).
    std::istringstream journal(read_text(dir / "serve.log"));
    std::size_t lines = 0;
    for (std::string line; std::getline(journal, line); ++lines) {
        INFO(line);
        CHECK(std::regex_match(line, std::regex("<[2-7]>[^0-9<].*")));
    }
    CHECK(lines >= 3);
    CHECK(read_text(dir / "serve.log").find("<6>serving repository") != std::string::npos);
    // Elsewhere: UTC timestamps that say so (and --log-level Debug was taken, in any case).
    std::istringstream plain(read_text(dir / "agent.log"));
    std::string first;
    std::getline(plain, first);
    INFO(first);
    CHECK(std::regex_match(first, std::regex("20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9:.]{12}Z "
                                             "(trace|debug|info|warning|error|critical) .*")));
}
