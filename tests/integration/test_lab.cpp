// Lab tests: the network-namespace lab (deploy/lab/lab.sh) with a real seeder at HQ and real
// endpoints behind shaped WAN links. They need root and working `ip netns`, veth, bridges and
// tbf (checked with `lab.sh check`); without them each test is skipped with a warning
// (Catch2 2.13 has no SKIP: WARN and return, so a skipped test shows as passed with the warning).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/process.hpp"

using patchswarm::test::Child;
using patchswarm::test::read_text;
using patchswarm::test::run;
using patchswarm::test::TempDir;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;

namespace {

// Why the lab cannot run here, or "" when it can.
std::string lab_unavailable() {
    if (::geteuid() != 0) return "not root (the lab needs network namespaces)";
    const auto r = run({"/bin/bash", PATCHSWARM_LAB_SCRIPT, "check"});
    if (r.exit_code != 0) return "lab.sh check failed: " + r.output;
    return "";
}

// `lab.sh run` with this test's binaries, lab id and work folder, plus `options`.
std::vector<std::string> lab_run_argv(const std::string& id, const fs::path& work,
                                      const std::vector<std::string>& options) {
    std::vector<std::string> argv = {"/bin/bash",
                                     PATCHSWARM_LAB_SCRIPT,
                                     "run",
                                     "--id",
                                     id,
                                     "--work-dir",
                                     work.string(),
                                     "--seeder-bin",
                                     PATCHSWARM_SEEDER_BIN,
                                     "--daemon-bin",
                                     PATCHSWARM_DAEMON_BIN};
    argv.insert(argv.end(), options.begin(), options.end());
    return argv;
}

// A lab id unique to this test process: namespaces are psl-<id>-*.
std::string lab_id(const std::string& tag) {
    return tag + std::to_string(::getpid() % 1000000);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// The last line of `output` that is a JSON object (lab.sh's result; its log lines go before).
nlohmann::json last_json_line(const std::string& output) {
    const auto ls = lines_of(output);
    for (auto it = ls.rbegin(); it != ls.rend(); ++it) {
        if (it->empty() || (*it)[0] != '{') continue;
        auto j = nlohmann::json::parse(*it, nullptr, false);
        if (j.is_object()) return j;
    }
    return nullptr;
}

// Network namespaces whose name starts with `prefix`.
std::vector<std::string> namespaces_with(const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& l : lines_of(run({"/bin/sh", "-c", "ip netns list"}).output)) {
        const std::string name = l.substr(0, l.find(' '));
        if (name.rfind(prefix, 0) == 0) out.push_back(name);
    }
    return out;
}

// Links of the test's own (root) namespace whose name starts with "psl". The lab creates none
// there (every veth is made inside its namespaces); a broken teardown would show up here.
std::vector<std::string> root_links_named_psl() {
    std::vector<std::string> out;
    for (const auto& l : lines_of(run({"/bin/sh", "-c", "ip -o link show"}).output)) {
        const auto a = l.find(": ");
        if (a == std::string::npos) continue;
        const std::string name = l.substr(a + 2, l.find_first_of(":@", a + 2) - (a + 2));
        if (name.rfind("psl", 0) == 0) out.push_back(name);
    }
    return out;
}

// Processes whose command line mentions `needle` (the run's work folder: the seeder and every
// endpoint have it in their arguments).
std::vector<std::string> processes_mentioning(const std::string& needle) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        const std::string pid = e.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        if (std::stoi(pid) == ::getpid()) continue;
        std::string cmd = read_text(e.path() / "cmdline");
        std::replace(cmd.begin(), cmd.end(), '\0', ' ');
        if (cmd.find(needle) != std::string::npos) out.push_back(pid + ": " + cmd);
    }
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x + "\n";
    return s;
}

}  // namespace

namespace {}  // namespace

// 2 sites x 3 endpoints behind 8 Mbit/s WAN links, 4 MiB payload. With one gateway per site the
// WAN links carried 1.02-1.03 payload copies in repeated runs (headers and metadata included);
// the bound is the issue's 1.5, so a regression to "every endpoint pulls from HQ" (3 copies)
// or to two gateways racing (up to 2) fails.
TEST_CASE(
    "lab: 2 sites x 3 endpoints behind 8 Mbit/s WAN links become effective, each site pulls at "
    "most 1.5 payload copies across its WAN link, and nothing is left behind",
    "[lab]") {
    const std::string why = lab_unavailable();
    if (!why.empty()) {
        WARN("lab test SKIPPED: " << why);
        return;
    }
    TempDir dir("ps-lab");
    const std::string id = lab_id("t");
    const fs::path work = dir / "work";
    const auto r = run(lab_run_argv(id, work,
                                    {"--sites", "2", "--hosts", "3", "--wan-rate", "8mbit",
                                     "--payload-mb", "4", "--timeout", "90"}));
    INFO("lab.sh output:\n" << r.output);
    const auto j = last_json_line(r.output);
    REQUIRE(j.is_object());
    CHECK(r.exit_code == 0);
    CHECK(j["result"] == "ok");
    CHECK(j["endpoints"] == 6);
    CHECK(j["done"] == 6);
    CHECK(j["states"].value("effective", 0) == 6);

    const auto payload = j["payload_bytes"].get<std::uint64_t>();
    CHECK(payload >= (4u << 20));
    REQUIRE(j["per_site"].size() == 2);
    for (const auto& site : j["per_site"]) {
        INFO(site.dump());
        CHECK(site["done"] == 3);
        // Each branch pulls the payload across its WAN link about once, never 3 times.
        CHECK(site["wan_in_bytes"].get<double>() <= 1.5 * static_cast<double>(payload));
        CHECK(site["wan_in_bytes"].get<std::uint64_t>() > 0);
    }
    // Every endpoint received the whole payload (install.sh is a few dozen bytes).
    CHECK(j["bytes_from_peers"].get<std::uint64_t>() +
              j["bytes_from_seeder"].get<std::uint64_t>() >=
          6 * (payload - 200));

    // Nothing of this run is left: namespaces, links, processes, the work folder.
    CHECK(join(namespaces_with("psl-" + id + "-")).empty());
    CHECK(join(root_links_named_psl()).empty());
    CHECK(join(processes_mentioning(work.string())).empty());
    CHECK_FALSE(fs::exists(work));
}

TEST_CASE("lab: a run interrupted by SIGINT or SIGTERM tears down everything it started", "[lab]") {
    const std::string why = lab_unavailable();
    if (!why.empty()) {
        WARN("lab test SKIPPED: " << why);
        return;
    }
    for (const int sig : {SIGINT, SIGTERM}) {
        DYNAMIC_SECTION("signal " << sig) {
            TempDir dir("ps-lab");
            const std::string id = lab_id(sig == SIGINT ? "i" : "k");
            const fs::path work = dir / "work";
            const fs::path log = dir / "lab.log";
            // 16 MiB cannot cross a 1 Mbit/s link quickly, so the run is still waiting when the
            // signal comes.
            Child lab(lab_run_argv(id, work,
                                   {"--sites", "1", "--hosts", "2", "--wan-rate", "1mbit",
                                    "--payload-mb", "16", "--timeout", "120"}),
                      log);
            INFO("lab.sh output:\n" << read_text(log));
            // Wait until the seeder and both endpoints run inside the lab.
            REQUIRE(wait_until(
                [&] {
                    return read_text(log).find("endpoints started") != std::string::npos &&
                           processes_mentioning(work.string()).size() >= 3;
                },
                std::chrono::seconds(60)));
            REQUIRE_FALSE(namespaces_with("psl-" + id + "-").empty());

            const int status = lab.kill(sig);  // lab.sh traps it, tears down, then exits
            INFO("lab.sh output after the signal:\n" << read_text(log));
            CHECK(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == (sig == SIGINT ? 130 : 143));
            CHECK(join(namespaces_with("psl-" + id + "-")).empty());
            CHECK(join(root_links_named_psl()).empty());
            CHECK(join(processes_mentioning(work.string())).empty());
            CHECK_FALSE(fs::exists(work));
        }
    }
}
